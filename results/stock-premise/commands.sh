# The commands whose outputs are in this folder, in order (each output file also opens with its command).
# Run from the project root, one at a time: 3, 4 and 12 min on the 2-core CPU.
set -euo pipefail
PY=${PY:-.venv/bin/python}
{ echo '$ python results/stock-premise/placement.py --split tune'; $PY results/stock-premise/placement.py --split tune; } > results/stock-premise/placement.txt
{ echo '$ python results/stock-premise/fewshot.py --k 4 --sets 3'; $PY results/stock-premise/fewshot.py --k 4 --sets 3; echo
  echo '$ python results/stock-premise/fewshot.py --k 16 --sets 3'; $PY results/stock-premise/fewshot.py --k 16 --sets 3; } > results/stock-premise/fewshot.txt

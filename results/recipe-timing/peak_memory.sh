# Peak resident memory of two short trainings (persona pairs; the tune half's answer pairs): bash results/recipe-timing/peak_memory.sh > results/recipe-timing/peak_memory.txt 2>&1
# (from any directory; GNU time's "kbytes" are KiB)
cd "$(dirname "$0")/../.."   # the repository root
set -x
/usr/bin/time -v .venv/bin/python innerpissa.py --model embedded --steps 3 --out /tmp/mem-persona.safetensors 2>&1 | grep -E "Maximum resident|Elapsed|pair-examples"
.venv/bin/python eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs /tmp/mem-pairs.csv 2>&1 | tail -1
/usr/bin/time -v .venv/bin/python innerpissa.py --model embedded --steps 3 --pairs /tmp/mem-pairs.csv --out /tmp/mem-pairs.safetensors 2>&1 | grep -E "Maximum resident|Elapsed|pair-examples"

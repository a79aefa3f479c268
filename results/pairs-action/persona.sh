# The main run's InnerPiSSA (persona pairs; the command of results/offline-20261205-134131/commands.sh, whose training
# reproduced bitwise across sessions) on the in-format check, at that run's c* (0.2805) without a null (in-format.txt
# has it). Run from the repository root after commands.sh: bash results/pairs-action/persona.sh > results/pairs-action/persona.txt
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-action}
$PY innerpissa.py --model embedded --seed 0 --steps 143 --probes data/probes.csv $P/tune_probes.csv \
  --out $P/persona-s0.safetensors > $P/train-persona.log 2>&1
tr '\r' '\n' < $P/train-persona.log | grep -v "it/s\|s/it" | grep -A4 "^innerpissa (antipasto)"
$PY results/pairs-action/in_format.py - $P/persona-s0.safetensors@0.28053359291352803

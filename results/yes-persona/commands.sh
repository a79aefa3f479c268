# A positive control on the stock model for the authors' mechanism (persona contrast -> persona-free behaviour) with
# a concept whose premise holds there: the assistant's own "I always answer Yes." against "... No." moves the
# stock model's Yes/No answers (readout.py's premise line); honesty written the same way does not
# (results/stock-premise/). InnerPiSSA at the authors' recipe and default budget on those pairs (--pairs), seed SEED,
# read on the test half's Truthfulness prompts (no persona) in its trained orientation at its own dose, against
# the evaluation's null at the main run's doses. Run from the repository root:
#   bash results/yes-persona/commands.sh > results/yes-persona/readout-s0.txt
#   SEED=1 bash results/yes-persona/commands.sh > results/yes-persona/readout-s1.txt
# (training-s*.txt: the training log without its progress bar. At seed 0 the readout was rerun on the same adapter
# after readout.py gained the G lines, with the last line of this file.)
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/yes-persona} SEED=${SEED:-0}
mkdir -p $P
$PY results/yes-persona/yes_pairs.py $P/yes_pairs.csv >&2
$PY innerpissa.py --model embedded --seed $SEED --steps 143 --pairs $P/yes_pairs.csv \
  --out $P/innerpissa-s$SEED.safetensors > $P/train-s$SEED.log 2>&1
$PY results/yes-persona/readout.py results/offline-20261205-134131/results.json $P/innerpissa-s$SEED.safetensors

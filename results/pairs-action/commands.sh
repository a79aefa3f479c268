# The stock model's contrast-pairs control (issue #26, item 3) on action pairs (action_pairs.py: each tune-half
# Truthfulness dilemma's situation answered with its honest / its other action, both rows ending in the same words),
# the authors' recipe unchanged (whole-row windows), training seed SEED (0 and 1 run), default budget (143 steps x 14 pairs), evaluated
# on the whole test half with the main run's seed (so its null), the sign read at the dose on the tune half (the
# default; in-sample here: the pairs are built from those dilemmas). Run from the repository root:
#   bash results/pairs-action/commands.sh; SEED=1 bash results/pairs-action/commands.sh
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-action} SEED=${SEED:-0}
mkdir -p $P
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $P/tune_probes.csv
$PY results/pairs-action/action_pairs.py $P/action_pairs.csv
$PY innerpissa.py --model embedded --seed $SEED --steps 143 --pairs $P/action_pairs.csv \
  --probes data/probes.csv $P/tune_probes.csv --out $P/innerpissa-s$SEED.safetensors > $P/train-s$SEED.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $P/innerpissa-s$SEED.safetensors --methods base --out $P/eval-test-s$SEED > $P/eval-test-s$SEED.log 2>&1

# The shared-shift term on a second planted model: planted.py --seed 1 (the control's build is --seed 0), everything
# else as commands.sh. On it: the default recipe (the authors') and w = 30 (the weight chosen on the first build's
# tune half), both at training seed 0 and the default budget; then the test half with the prompt baseline (is the
# premise there on this build?) and the K = 16 null, each sign read at the dose on the tune half, evaluation seed 0.
# Usage: bash results/shift-term/build1.sh   (from the repository root; one job at a time). Ran 2026-12-06 at 7ecdd37:
# 42 min (planting 5, trainings 815 s and 692 s, the evaluation ~11 min). -> build1-eval-test.md (printed tables),
# build1-results-test.json, build1-rows-test.csv, build1-training-summary.txt (the planting line and each training's
# summary and last step). SEED=1 at 9f67b2b: 32 min (trainings 604 s and 612 s) -> build1-s1-*.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/shift-b1} S=${SEED:-0}     # SEED: the training seed (files get -s$SEED)
X=$([ "$S" = 0 ] || echo "-s$S")
mkdir -p $R
[ -f $R/planted/planted.json ] || $PY planted.py --model embedded --seed 1 --dilemmas data --out $R/planted > $R/planted.log 2>&1
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv > /dev/null
for w in 0 30; do
  $PY innerpissa.py --model $R/planted --seed $S --steps 143 --shift-weight $w --probes data/probes.csv $R/tune_probes.csv \
    --out $R/w$w$X.safetensors > $R/train-w$w$X.log 2>&1
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $R/w0$X.safetensors $R/w30$X.safetensors --methods prompt base --out $R/eval-test$X > $R/eval-test$X.log 2>&1

# Our shared-shift term (innerpissa.shift_loss, `--shift-weight`; not the authors') on the control's planted model.
# 2026-12-06 at 163dfd7, the commit that added the term (the two seed-0 trainings ran its code just before the commit);
# cwd: the main checkout, one job at a time on 2 cores.
# The planted model is the control's (planted.json equal to results/control-seeds/planted.json but for the timings),
# so the default recipe's tune-half numbers at seeds 0-2 are results/control-seeds/ (same evaluation seed and null).
# The w30 and w3 trainings ran before the summary line named the weight (163dfd7), so training-summary.txt says
# "deviations from the authors' recipe: none" for them (and their metadata an empty list); they ran with the weight.
# Times: planting 5 min; each training 12-14 min; the tune evaluation 14 min, the test evaluation 13 min.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/shift}
mkdir -p $R
$PY planted.py --model embedded --seed 0 --dilemmas data --out $R/planted
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
# 1. Choose the weight on the tune half: 30 (the hinge's weight) and 3, seed 0, the default budget.
for w in 30 3; do
  $PY innerpissa.py --model $R/planted --seed 0 --steps 143 --shift-weight $w --probes data/probes.csv $R/tune_probes.csv \
    --out $R/shift-w$w.safetensors > $R/train-w$w.log 2>&1
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split tune --doses -1 1 \
  --artifacts $R/shift-w30.safetensors $R/shift-w3.safetensors --methods prompt base --out $R/eval-tune > $R/eval-tune.log 2>&1
# 2. The chosen weight (30) at a second training seed, then the test half (each sign read at the dose on the tune
#    half, --sign-from tune, the default with --split test), the control's evaluation seed and null.
$PY innerpissa.py --model $R/planted --seed 1 --steps 143 --shift-weight 30 --probes data/probes.csv $R/tune_probes.csv \
  --out $R/shift-w30-s1.safetensors > $R/train-w30-s1.log 2>&1
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $R/shift-w30.safetensors $R/shift-w30-s1.safetensors --methods prompt base --out $R/eval-test > $R/eval-test.log 2>&1
# 3. Is the change still gated by the persona? (results/planted-check/gating.py: odd change along v at c = ±1)
$PY results/planted-check/gating.py $R/planted shift-w30=$R/shift-w30.safetensors shift-w30-s1=$R/shift-w30-s1.safetensors \
  shift-w3=$R/shift-w3.safetensors > $R/gating.txt
# The files here were then written from $R with:
#   for h in tune test; do tr '\r' '\n' < $R/eval-$h.log | sed -n '/^| method | c\* | KL/,$p' \
#     | grep -v "it/s\|s/it\|^scoring\|^wrote\|^real\|^user\|^sys" > results/shift-term/eval-$h.md
#     cp $R/eval-$h/results.json results/shift-term/results-$h.json; done
#   for n in w30 w3 w30-s1; do echo "## $n"; tr '\r' '\n' < $R/train-$n.log | grep -v "it/s\|s/it" | grep -A4 "^innerpissa (antipasto)"; done \
#     > results/shift-term/training-summary.txt
#   cp $R/gating.txt results/shift-term/

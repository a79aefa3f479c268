# Does the hinge's orientation also stand between the authors' objective and the planted model's answers? On the
# stock model's answer pairs, fixing it (--deviate fixed-orientation: +1 asks the positive, honest-persona, row's
# reply to gain at c = +1; the authors' hinge takes whichever orientation costs less per micro-batch) took InnerPiSSA
# from at most 28 % of the ceiling to 1.13x, 0.48x, 0.66x and 0.43x at four seeds (results/pairs-hinge/fixed-proj.sh).
# Here: the control's planted model and InnerPiSSA's own self-supervised persona pairs, the default recipe and budget
# with only that switch, scored on the tune half only (a localisation for issue #26; the default recipe's rows on this
# model and half are results/control-seeds/, seeds 0-2: E +0.025, -0.012, +0.012, null p95 0.020, the same evaluation
# seed and doses).
# Usage: SEEDS="0 1" bash results/planted-hinge/commands.sh   (from the repository root; ~18 min a seed + 12 min)
# Ran: SEEDS=0 at 15617b8 (2026-12-07; training code as 8069301), 40 min alone (planted 199 s, training 1082 s).
# hinge cost in training-summary.txt: python results/pairs-hinge/hinge_cost.py $R/train-fixed-s0.log
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/planted-hinge}
mkdir -p $R
[ -f $R/planted/config.json ] || $PY planted.py --model embedded --seed 0 --dilemmas data --out $R/planted > $R/planted.log 2>&1
[ -f $R/tune_probes.csv ] || $PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
arts=""
for s in ${SEEDS:-0}; do
  $PY innerpissa.py --model $R/planted --seed $s --steps 143 --deviate fixed-orientation --probes data/probes.csv $R/tune_probes.csv \
    --out $R/fixed-s$s.safetensors > $R/train-fixed-s$s.log 2>&1
  arts="$arts $R/fixed-s$s.safetensors"
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split tune --doses -1 1 --artifacts $arts \
  --methods prompt base --out $R/eval-tune > $R/eval-tune.log 2>&1
# -> eval-tune.md (the printed tables), results-tune.json, training-summary.txt, planted.json (compare with
#    results/control-seeds/planted.json: the same build)

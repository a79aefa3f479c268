# Which term moves the stock model's Yes/No answers when InnerPiSSA trains on labelled-answer pairs (issue #26 item 3)?
# The authors' objective without its projection term (--proj-weight 0: the TV barrier and the hinge only; the hinge's
# output gap on these pairs is the honest margin at the answer position, what the evaluation scores). Everything else
# as results/shift-term/pairs.sh and results/pairs-stock-20261204/ (reply windows, the default budget, seed 0), so the
# comparison with the full objective is E +0.026 at seed 0 (+0.007 retrained at 3a06360; seed 1: -0.018, +0.060);
# the oracle and null are the main run's (results/offline-20261205-134131/: the same evaluation seed, so the same 16
# null directions). A localisation on the test half as the earlier answer-pair rows; no default is chosen from it.
# FIXED=1: the hinge alone with its orientation fixed as well (--deviate fixed-orientation: +1 asks the positive,
# honest, row's answer to gain at c = +1; the authors' hinge takes whichever orientation costs less per micro-batch).
# Usage: SEEDS="0 1" [FIXED=1] bash results/pairs-hinge/commands.sh   (from the repository root; ~45 min a seed on 2 cores)
# Ran 2026-12-06, one job at a time: SEEDS=0 at 95b19d9 (training 1708 s), FIXED=1 SEEDS=0 (1495 s) and FIXED=1 SEEDS=1
# (1984 s) at 8069301; each evaluation ~12 min.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/pairs-hinge} V=${FIXED:+fixed-}
mkdir -p $R
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $R/answer_pairs.csv
for s in ${SEEDS:-0}; do
  $PY innerpissa.py --model embedded --seed $s --steps 143 --deviate reply-window ${FIXED:+fixed-orientation} --proj-weight 0 \
    --pairs $R/answer_pairs.csv --probes data/probes.csv $R/tune_probes.csv --out $R/${V}s$s.safetensors > $R/train-${V}s$s.log 2>&1
  $PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $R/${V}s$s.safetensors \
    --methods base --out $R/eval-${V}s$s > $R/eval-${V}s$s.log 2>&1
done
# -> [fixed-]eval-sN.md (the printed tables: the table rows of eval-sN.log), [fixed-]results-sN.json,
#    [fixed-]training-summary-sN.txt

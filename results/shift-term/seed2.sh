# A third training seed for the shared-shift term (w = 30) on the planted model of commands.sh (runs/shift/planted),
# then its test half alone (sign read at the dose on the tune half, --sign-from tune, the default with --split test;
# the same evaluation seed, so the same null as eval-test.md). 2026-12-06 at 52cd779 (training) and dbfdc2f (evaluation;
# dbfdc2f only adds --shift-reference, whose default "batch" is the term as trained here). One job at a time but for
# the training's first ~7 minutes, which shared the CPU with a mistaken start of pairs-pair.sh (its 1276 s, 1.99
# pair-examples/s, and its printed time estimate are slow for that); the evaluation took 11 min.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/shift}
$PY innerpissa.py --model $R/planted --seed 2 --steps 143 --shift-weight 30 --probes data/probes.csv $R/tune_probes.csv \
  --out $R/shift-w30-s2.safetensors > $R/train-w30-s2.log 2>&1
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $R/shift-w30-s2.safetensors --methods base --out $R/eval-test-s2 > $R/eval-test-s2.log 2>&1
# -> seed2-eval-test.md (the printed tables, as eval-test.md), seed2-results-test.json; training-summary.txt gained "## w30-s2"

# The shared-shift term on the stock model's labelled-answer pairs (issue #26 item 3: E >= 1/2 of the oracle's).
# The weight is the one chosen on the planted model's tune half (30); everything else as results/pairs-stock-20261204/
# (reply windows, the default budget, seed 0), so its E +0.026 at seed 0 (+0.007 retrained at 3a06360) is the
# comparison without the term; the oracle and null are the main run's (results/offline-20261205-134131/: the same
# evaluation seed, so the same 16 null directions at their own doses). 2026-12-06 at 0367699, one job at a time.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/shift-pairs}
mkdir -p $R
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $R/answer_pairs.csv
$PY innerpissa.py --model embedded --seed 0 --steps 143 --deviate reply-window --shift-weight 30 \
  --pairs $R/answer_pairs.csv --probes data/probes.csv $R/tune_probes.csv --out $R/innerpissa.safetensors > $R/train.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $R/innerpissa.safetensors \
  --methods base --out $R/eval-test > $R/eval-test.log 2>&1
# -> pairs-eval-test.md (the printed tables, as eval-test.md above), pairs-results-test.json, pairs-training-summary.txt
# Times: training 2328 s (15.5 s a step), the evaluation 12 min.

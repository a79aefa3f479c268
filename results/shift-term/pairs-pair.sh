# The shared-shift term with each pair's own reference (--shift-reference pair) on the stock model's labelled-answer
# pairs (issue #26 item 3: E >= 1/2 of the oracle's). pairs.sh's batch reference averages the Yes-honest and No-honest
# pairs' differences away; here each pair reads along its own. Everything else as pairs.sh (w = 30 from the planted
# model's tune half, reply windows, the default budget, seed 0; the same answer pairs and tune probes, rewritten).
# 2026-12-06 at dbfdc2f, one job at a time. Seed 1: SEED=1 RUN=runs/shift-pairs-ref-s1 bash results/shift-term/pairs-pair.sh
# (started at 54c8fea, code as dbfdc2f's; its evaluation ran after fbad3e1, which changed only help text).
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/shift-pairs-ref} S=${SEED:-0}
mkdir -p $R
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $R/answer_pairs.csv
$PY innerpissa.py --model embedded --seed $S --steps 143 --deviate reply-window --shift-weight 30 --shift-reference pair \
  --pairs $R/answer_pairs.csv --probes data/probes.csv $R/tune_probes.csv --out $R/innerpissa.safetensors > $R/train.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $R/innerpissa.safetensors \
  --methods base --out $R/eval-test > $R/eval-test.log 2>&1
# -> pairs-pair-eval-test.md (the printed tables), pairs-pair-results-test.json, pairs-pair-training-summary.txt
#    (seed 1: pairs-pair-s1-eval-test.md, pairs-pair-s1-results-test.json, its block appended to the summary)

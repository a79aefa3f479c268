# Does the hinge build the Yes-against-No axis on answer pairs? The reply-window run of results/sign-at-dose/ part 2,
# training seed 0 (its adapter moves 92-98 % of test rows one way, ±0.52 nats: yes-shift.txt), trained again with the
# hinge off (--mono-weight 0), everything else the same; then scored on the test half, --null 0 (only rows.csv is read:
# yes_shift.py is label-free). Run from the repository root after results/sign-at-dose/commands.sh part 2.
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-sign} Q=${Q:-runs/pairs-nohinge}
mkdir -p $Q
$PY innerpissa.py --model embedded --seed 0 --steps 143 --deviate reply-window --mono-weight 0 --pairs $P/answer_pairs.csv \
  --probes data/probes.csv $P/tune_probes.csv --out $Q/innerpissa-s0.safetensors > $Q/train-s0.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 --null 0 \
  --artifacts $Q/innerpissa-s0.safetensors --methods base --out $Q/eval-test > $Q/eval-test.log 2>&1
$PY results/pairs-whole-row/yes_shift.py $Q/eval-test/rows.csv

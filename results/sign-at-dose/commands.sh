# The sign read at the dose from the tune half (eval_dilemmas.py --sign-from tune), on the positive control's planted
# model at six training seeds of InnerPiSSA's default recipe and budget.
# Question: does the tune half's Truthfulness score at ±c* orient the adapter right on the test half, where the
# training's calibration (probes at c = ±1) could not tell (UNCERTAIN at seeds 0-2, wrong at seed 1)?
# Seeds 0-2 are results/control-seeds/'s adapters; 3-5 are new, trained the same way.
# Run from the repository root: bash results/sign-at-dose/commands.sh   (2026-12-05 at 3a06360, 2 cores: part 1 in
# 47 min, seeds 3-5 trained 10 min each and the evaluation 14 min; part 2 in 64 min, 27 min a seed, evaluation 10)
set -euo pipefail
PY=${PY:-.venv/bin/python} RUN=${RUN:-runs/control-seeds}
if [ ! -d $RUN/planted ]; then   # the control's planted model, probes and seeds 0-2 (results/control-seeds/commands.sh)
  RUN=$RUN bash results/control-seeds/commands.sh
fi
for s in 3 4 5; do
  $PY innerpissa.py --model $RUN/planted --seed $s --steps 143 --probes data/probes.csv $RUN/tune_probes.csv \
    --out $RUN/innerpissa-s$s.safetensors > $RUN/train-s$s.log 2>&1
done
# the test half, each adapter oriented on the tune half at its dose; the control's evaluation seed (its null)
$PY eval_dilemmas.py --model $RUN/planted --seed 0 --dilemmas data --split test --doses -1 1 --sign-from tune \
  --artifacts $RUN/innerpissa-s{0,1,2,3,4,5}.safetensors --methods base --out $RUN/eval-test-tune-sign \
  > $RUN/eval-test-tune-sign.log 2>&1

# Part 2: the stock model's contrast-pairs adapters (results/pairs-stock-20261204/commands.sh: seeds 0 and 1, the
# answer pairs of the tune half, reply windows), retrained at this commit, evaluated the same way.
P=${P:-runs/pairs-sign}
mkdir -p $P
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $P/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $P/answer_pairs.csv
for s in 0 1; do
  $PY innerpissa.py --model embedded --seed $s --steps 143 --deviate reply-window --pairs $P/answer_pairs.csv \
    --probes data/probes.csv $P/tune_probes.csv --out $P/innerpissa-s$s.safetensors > $P/train-s$s.log 2>&1
done
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 --sign-from tune \
  --artifacts $P/innerpissa-s0.safetensors $P/innerpissa-s1.safetensors --methods base --out $P/eval-test-tune-sign \
  > $P/eval-test-tune-sign.log 2>&1

# The files here were then written with ($D: planted for $RUN, pairs for $P):
#   $PY results/sign-at-dose/table.py $RUN $RUN/eval-test-tune-sign > results/sign-at-dose/planted.md
#   $PY results/sign-at-dose/table.py $P $P/eval-test-tune-sign > results/sign-at-dose/pairs.md
#   cp $RUN/eval-test-tune-sign/results.json results/sign-at-dose/results-$D.json   (and $P's)
#   tr '\r' '\n' < $RUN/eval-test-tune-sign.log | sed -n '/^| method | c\* | KL/,$p' > results/sign-at-dose/eval-$D.md
#   for s in 3 4 5; do tr '\r' '\n' < $RUN/train-s$s.log | grep -v "it/s\|s/it" | grep -A4 "^innerpissa (antipasto)"; done \
#     > results/sign-at-dose/training-summary-planted.txt   (and $P's seeds 0 1 into training-summary-pairs.txt)

# The stock model's contrast-pairs control (issue #26, item 3) with the authors' recipe unchanged: whole-row windows.
# Every earlier --pairs run (results/pairs-stock-20261203/, pairs-stock-20261204/, sign-at-dose/ part 2) used
# --deviate reply-window to halve the step's cost; this is the default recipe, training seed 0, default budget
# (143 steps x 14 pairs = 2,002 pair-examples), evaluated on the whole test half with the main run's seed (so its null)
# and the sign read at the dose on the tune half (the default; in-sample here: the pairs are built from those rows).
# Run from the repository root: bash results/pairs-whole-row/commands.sh   (2026-12-05 at 175021f, main checkout, nothing
# else heavy running: 57 min; the training 2940 s, 19-24 s a step, 0.74 pair-examples/s; the evaluation 480 s)
# The files here were then written with:
#   tr '\r' '\n' < $P/eval-test.log | sed -n '/^| method | c\* | KL/,$p' > results/pairs-whole-row/table.md
#   cp $P/eval-test/results.json results/pairs-whole-row/
#   tr '\r' '\n' < $P/train-s0.log | grep -v "it/s\|s/it" | grep -A4 "^innerpissa (antipasto)" > results/pairs-whole-row/training-summary.txt
#   ln -sf innerpissa-s0.safetensors $P/innerpissa.safetensors   # the name results.json gives a lone artifact
#   $PY results/sign-at-dose/table.py $P $P/eval-test > results/pairs-whole-row/sign.md
#   yes-shift.txt: results/pairs-whole-row/yes_shift.py on $P/eval-test/rows.csv and on runs/pairs-sign's
#   eval-test-tune-sign/rows.csv (results/sign-at-dose/commands.sh part 2), the two commands in its comment lines
#   subspace_share.txt: $PY results/pairs-whole-row/subspace_share.py $P/answer_pairs.csv (its first line)
#   nohinge.txt: bash results/pairs-whole-row/nohinge.sh (the hinge off on the reply-window seed-0 run), its output and
#   the evaluation's table and training summary from its logs
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-whole-row}
mkdir -p $P
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $P/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $P/answer_pairs.csv
$PY innerpissa.py --model embedded --seed 0 --steps 143 --pairs $P/answer_pairs.csv \
  --probes data/probes.csv $P/tune_probes.csv --out $P/innerpissa-s0.safetensors > $P/train-s0.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $P/innerpissa-s0.safetensors --methods base --out $P/eval-test > $P/eval-test.log 2>&1

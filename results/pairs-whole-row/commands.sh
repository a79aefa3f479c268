# The stock model's contrast-pairs control (issue #26, item 3) with the authors' recipe unchanged: whole-row windows.
# Every earlier --pairs run (results/pairs-stock-20261203/, pairs-stock-20261204/, sign-at-dose/ part 2) used
# --deviate reply-window to halve the step's cost; this is the default recipe, training seed 0 (SEED for others), default budget
# (143 steps x 14 pairs = 2,002 pair-examples), evaluated on the whole test half with the main run's seed (so its null)
# and the sign read at the dose on the tune half (the default; in-sample here: the pairs are built from those rows).
# Run from the repository root: [SEED=s] bash results/pairs-whole-row/commands.sh (training seed s, default 0; the
# evaluation's seed, so its null, stays 0). Seed 0: 2026-12-05 at 175021f, main checkout, nothing
# else heavy running: 57 min; the training 2940 s, 19-24 s a step, 0.74 pair-examples/s; the evaluation 480 s.
# Seed 1: 2026-12-07, SEED=1 (a copy in /tmp) at 3982887's training code, main checkout, 129.6 min: the training 6681 s
# at 29-49 s a step (a slower day; an 11-min one-thread job beside its first 12 min), the evaluation 17 min.
# Its files: table-s1.md, results-s1.json, training-summary-s1.txt (the
# same commands with s1 names; its summary keeps the estimate line, grep -B2), yes-shift.txt's last lines.
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
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-whole-row} S=${SEED:-0}
mkdir -p $P
[ -f $P/tune_probes.csv ] || $PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $P/tune_probes.csv
[ -f $P/answer_pairs.csv ] || $PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $P/answer_pairs.csv
$PY innerpissa.py --model embedded --seed $S --steps 143 --pairs $P/answer_pairs.csv \
  --probes data/probes.csv $P/tune_probes.csv --out $P/innerpissa-s$S.safetensors > $P/train-s$S.log 2>&1
E=$P/eval-test; [ $S = 0 ] || E=$P/eval-test-s$S     # seed 0's folder kept its first name
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $P/innerpissa-s$S.safetensors --methods base --out $E > $E.log 2>&1

# InnerPiSSA at three training seeds on the control's planted model, each scored on both halves.
# Question: is the control's "steers" (seed 0, test half E +0.016) a property of the recipe or of one seed,
# and does the sign of E on the tune half (at the dose) predict its sign on the test half?
# Run from the repository root: bash results/control-seeds/commands.sh   (82 min on 2 cores, 2026-12-05)
set -euo pipefail
PY=${PY:-.venv/bin/python} RUN=${RUN:-runs/control-seeds}
mkdir -p $RUN
# the control's planted model and sign probes (results/control-20261205-052910/commands.sh)
$PY planted.py --model embedded --seed 0 --dilemmas data --out $RUN/planted
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $RUN/tune_probes.csv
# InnerPiSSA at the default recipe and budget, training seeds 0, 1, 2
for s in 0 1 2; do
  $PY innerpissa.py --model $RUN/planted --seed $s --steps 143 --probes data/probes.csv $RUN/tune_probes.csv \
    --out $RUN/innerpissa-s$s.safetensors 2>&1 | tee $RUN/train-s$s.log
done
# each half with the control's evaluation seed (so the test half's null is the control's), doses ±1 only
for split in test tune; do
  $PY eval_dilemmas.py --model $RUN/planted --seed 0 --dilemmas data --split $split --doses -1 1 \
    --artifacts $RUN/innerpissa-s0.safetensors $RUN/innerpissa-s1.safetensors $RUN/innerpissa-s2.safetensors \
    --methods base --out $RUN/eval-$split 2>&1 | tee $RUN/eval-$split.log
done
# The files of results/control-seeds/ were then written from $RUN with:
#   $PY results/control-seeds/table.py $RUN > results/control-seeds/table.md
#   for h in test tune; do tr '\r' '\n' < $RUN/eval-$h.log | sed -n '/^| method | c\* | KL/,/^verdict:/p' > results/control-seeds/eval-$h.md
#     cp $RUN/eval-$h/results.json results/control-seeds/results-$h.json; done
#   for s in 0 1 2; do tr '\r' '\n' < $RUN/train-s$s.log | grep -v "it/s\|s/it" | grep -A4 "^innerpissa (antipasto)"; done \
#     > results/control-seeds/training-summary.txt
#   cp $RUN/planted/planted.json results/control-seeds/

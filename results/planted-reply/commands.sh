# Do the two switches that made the stock model's answer pairs work (README, "Contrast pairs from labelled answers":
# --deviate reply-window fixed-orientation, 0.43-1.13x the ceiling at six seeds) also help on the control's planted
# model, with InnerPiSSA's own persona pairs? Until now each was run there alone or not at all: fixed-orientation
# alone, raw E -0.028 on the tune half (results/planted-hinge/); reply-window never on this model. Here, the default
# recipe and budget with DEVIATE switched (default both), scored on the tune half only (a localisation for issue #26),
# against the same build, evaluation seed and doses as results/control-seeds/ and results/planted-hinge/ (the
# default's raw tune E at seeds 0-2: +0.025, -0.012, +0.012; prompt +0.159; the K = 16 null's p95 0.020 there, so
# NULL=0 by default saves its 12 min).
# Usage: [DEVIATE="reply-window"] SEEDS="0 1" [NULL=16] bash results/planted-reply/commands.sh   (from the repo root)
# Ran: SEEDS=0, then SEEDS=1, at 96264c8 (2026-12-08; AMD EPYC with AVX-512), each alone: 24 and 23 min (the build
# 3.5 min, training 867 and 891 s, the evaluation ~7 min). Copied: eval-*.md (the printed tables), results-*.json,
# training-summary-*.txt (with results/pairs-hinge/hinge_cost.py's line), planted.json.
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/planted-reply} DEVIATE=${DEVIATE:-reply-window fixed-orientation}
N=$(echo $DEVIATE | tr ' ' '+') E=$(echo ${SEEDS:-0} | tr ' ' '-')
mkdir -p $R
[ -f $R/planted/config.json ] || $PY planted.py --model embedded --seed 0 --dilemmas data --out $R/planted > $R/planted.log 2>&1
[ -f $R/tune_probes.csv ] || $PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
arts=""
for s in ${SEEDS:-0}; do
  $PY innerpissa.py --model $R/planted --seed $s --steps 143 --deviate $DEVIATE --probes data/probes.csv $R/tune_probes.csv \
    --out $R/$N-s$s.safetensors > $R/train-$N-s$s.log 2>&1
  arts="$arts $R/$N-s$s.safetensors"
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split tune --doses -1 1 --null ${NULL:-0} --artifacts $arts \
  --methods prompt base --out $R/eval-$N-s$E > $R/eval-$N-s$E.log 2>&1
# -> eval-$N-sE.md (the printed tables), results-$N-sE.json, training-summary-$N-sE.txt, planted.json (compare with
#    results/planted-hinge/planted.json: the same build but for timings)

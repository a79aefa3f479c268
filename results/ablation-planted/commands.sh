# Run at commit a6d32cc (cwd: the main checkout), 2026-12-03, one job at a time on 2 cores: each training ~20 min, the eval 23 min.
# The table: .venv/bin/python results/ablation-planted/table.py runs/ablate-planted/eval-tune/results.json > results/ablation-planted/table.md
# Tune-half ablation of the loss subspace on the planted model of results/control-20261203-112017/
# (its planted model and tune probes; default.safetensors is that run's InnerPiSSA adapter, trained with the
# same command without --deviate).
set -euo pipefail
PY=.venv/bin/python R=/tmp/fc-full/runs/20261203-112017-control OUT=runs/ablate-planted
for dev in uncentred-subspace taskdiff-only; do
  $PY innerpissa.py --model $R/planted --seed 0 --steps 143 --deviate $dev --probes data/probes.csv $R/tune_probes.csv --out $OUT/$dev.safetensors 2>&1 | tee $OUT/$dev.log
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/default.safetensors $OUT/uncentred-subspace.safetensors $OUT/taskdiff-only.safetensors --methods prompt base --out $OUT/eval-tune 2>&1 | tee $OUT/eval-tune.log

# The stock-model ablation of the authors' recipe (the default since the parity work), tune half.
# Run 2026-12-04 at commit a745597 (cwd: the main checkout), one job at a time on 2 cores; each training 14-15 min
# (default-s1 took 22 min: a short test ran beside it), the eval ~30 min.
# Not run in this session: the other deviations (frobenius-bound projection-orientation reply-window pooled-tv
# plain-floors linear-focus whole-batch relative-scaling taskdiff-only
# our-template cosine-schedule) and seed 1 of each flag.
# The table: .venv/bin/python results/ablation-recipe/table.py runs/ablate-stock/eval-tune/results.json > results/ablation-recipe/table.md
set -euo pipefail
PY=.venv/bin/python OUT=runs/ablate-stock
mkdir -p $OUT
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $OUT/tune_probes.csv
train() {  # stem seed [--deviate names]
  local name=$1 seed=$2; shift 2
  $PY innerpissa.py --model embedded --seed $seed --steps 143 ${1:+--deviate "$@"} --probes data/probes.csv $OUT/tune_probes.csv \
    --out $OUT/$name.safetensors > $OUT/$name.log 2>&1
}
train default 0
train default-s1 1
for dev in uncentred-subspace batch-margin small-init ceil-lists; do
  train $dev 0 $dev
done
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split tune --artifacts $(ls $OUT/*.safetensors) \
  --methods prompt base --out $OUT/eval-tune > $OUT/eval-tune.log 2>&1

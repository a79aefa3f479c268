# The exact commands of this run, in order. Re-run them with: bash runs/20261121-225704/commands.sh
set -euo pipefail
PY=.venv/bin/python MODEL=embedded RUN=${RUN:-runs/20261121-225704}
$PY innerpissa.py --model $MODEL --seed 0 --steps 36 --out $RUN/innerpissa.safetensors
$PY baselines.py pca --model $MODEL --seed 0 --max-pairs 64 --out $RUN/pca.safetensors
$PY baselines.py random --model $MODEL --seed 0 --max-pairs 64 --out $RUN/random.safetensors
$PY baselines.py weight_diff --model $MODEL --seed 0 --max-questions 32 --steps 8 --out $RUN/weight_diff.safetensors
$PY eval_dilemmas.py --model $MODEL --seed 0 --dilemmas data --split test --artifacts $RUN/innerpissa.safetensors $RUN/pca.safetensors $RUN/random.safetensors $RUN/weight_diff.safetensors --methods prompt base --out $RUN

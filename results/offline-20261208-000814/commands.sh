# The exact commands of this run, in order. Re-run them with: bash runs/20261208-000814/commands.sh
set -euo pipefail
PY=.venv/bin/python MODEL=embedded RUN=${RUN:-runs/20261208-000814}
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $RUN/tune_probes.csv
$PY innerpissa.py --model $MODEL --seed 0 --steps 143 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/innerpissa.safetensors
$PY baselines.py oracle --model $MODEL --seed 0 --dilemmas data --steps 32 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/oracle.safetensors
$PY baselines.py pca --model $MODEL --seed 0 --max-pairs 64 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/pca.safetensors
$PY baselines.py random --model $MODEL --seed 0 --max-pairs 64 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/random.safetensors
$PY baselines.py weight_diff --model $MODEL --seed 0 --max-questions 32 --steps 8 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/weight_diff.safetensors
$PY eval_dilemmas.py --model $MODEL --seed 0 --dilemmas data --split test --doses -2 -1 1 2 --sign-from tune --artifacts $RUN/innerpissa.safetensors $RUN/oracle.safetensors $RUN/pca.safetensors $RUN/random.safetensors $RUN/weight_diff.safetensors --methods prompt base --out $RUN
$PY samples.py --model $MODEL --artifact $RUN/innerpissa.safetensors --coeffs -0.2775583555888746 0 0.2775583555888746 --n 1  --out $RUN/samples.md

# The exact commands of this run, in order. Re-run them with: bash runs/20261206-153115-control/commands.sh
set -euo pipefail
PY=.venv/bin/python MODEL=embedded RUN=${RUN:-runs/20261206-153115-control}
$PY planted.py --model $MODEL --seed 0 --dilemmas data  --out $RUN/planted
MODEL=$RUN/planted
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $RUN/tune_probes.csv
$PY innerpissa.py --model $MODEL --seed 0 --steps 143 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/innerpissa.safetensors
$PY innerpissa.py --model $MODEL --seed 0 --steps 143 --shift-weight 30 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/innerpissa-shift.safetensors
$PY baselines.py oracle --model $MODEL --seed 0 --dilemmas data --steps 32 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/oracle.safetensors
$PY baselines.py pca --model $MODEL --seed 0 --max-pairs 64 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/pca.safetensors
$PY baselines.py random --model $MODEL --seed 0 --max-pairs 64 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/random.safetensors
$PY baselines.py weight_diff --model $MODEL --seed 0 --max-questions 32 --steps 8 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/weight_diff.safetensors
$PY eval_dilemmas.py --model $MODEL --seed 0 --dilemmas data --split test --doses -2 -1 1 2 --sign-from tune --artifacts $RUN/innerpissa.safetensors $RUN/innerpissa-shift.safetensors $RUN/oracle.safetensors $RUN/pca.safetensors $RUN/random.safetensors $RUN/weight_diff.safetensors --methods prompt base --out $RUN
$PY samples.py --model $MODEL --artifact $RUN/innerpissa.safetensors --coeffs -0.43091118134424083 0 0.43091118134424083 --n 1  --out $RUN/samples.md

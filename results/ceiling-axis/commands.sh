# Does the persona contrast point where the supervised ceiling moves the model? Written at b0636bc; this script at e3eec88 printed the same output. cwd: the repository root.
# The two artifacts are those of `OFFLINE=1 bash run.sh` at 8ea7bbb (runs/20261129-170040/, the training and oracle code
# of the reported run; the oracle is fitted on the tune half, so these rows are in-sample for it):
#   $PY innerpissa.py --model embedded --seed 0 --steps 143 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/innerpissa.safetensors
#   $PY baselines.py oracle --model embedded --seed 0 --dilemmas data --steps 32 --probes data/probes.csv $RUN/tune_probes.csv --out $RUN/oracle.safetensors
.venv/bin/python results/ceiling-axis/ceiling_axis.py runs/20261129-170040/oracle.safetensors runs/20261129-170040/innerpissa.safetensors > results/ceiling-axis/output.txt

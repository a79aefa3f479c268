# How the default --kl 0.1 was chosen (tune half only); see README "Choosing the KL budget".
# pca, random and eval ran at commit d270d5d; the innerpissa adapter was trained at 6d65b12 (185 suffixes then).
PY=.venv/bin/python
$PY baselines.py pca --model embedded --seed 0 --max-pairs 64 --out /tmp/runs/pca.safetensors
$PY baselines.py random --model embedded --seed 0 --max-pairs 64 --out /tmp/runs/random.safetensors
$PY innerpissa.py --model embedded --steps 36 --out /tmp/runs/pilot2.safetensors
$PY eval_dilemmas.py --split tune --max-dilemmas 60 --artifacts /tmp/runs/pca.safetensors /tmp/runs/random.safetensors /tmp/runs/pilot2.safetensors --methods base prompt --null 0 --kl 0.025 --doses -4 -2 -1 1 2 4 --out results/tune-kl-choice

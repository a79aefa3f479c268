# Three times the authors' smallest working budget (6,006 pair-examples, 429 steps) against the default
# 2,002, tune half. Ran at commit a047de8 (cwd: the main checkout; PY=.venv/bin/python, A=runs/budget).
# runs/antipasto-tune/antipasto.safetensors is the default recipe's seed-0 adapter of
# results/objective-tune/commands.sh (2,002 pair-examples, sign from data/probes.csv), re-scored here.
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 429 --seed 0 --out $A/budget6006.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 48 --null 16 --methods base --artifacts runs/antipasto-tune/antipasto.safetensors $A/budget6006.safetensors --out $A/eval

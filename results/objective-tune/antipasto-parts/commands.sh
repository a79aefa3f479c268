set -euo pipefail
A=runs/abl   # at commit c8e0c37 + docs (same code); PY=.venv/bin/python
$PY innerpissa.py --model embedded --steps 10 --seed 0 --probes data/probes.csv --out $A/budget140.safetensors
$PY innerpissa.py --model embedded --steps 143 --seed 0 --top-directions --probes data/probes.csv --out $A/topdirs.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 48 --artifacts $A/budget140.safetensors $A/topdirs.safetensors --methods base --null 0 --out $A/eval

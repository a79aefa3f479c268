$PY innerpissa.py --model embedded --seed 0 --steps 36 --max-angle 0 --out $A/unbounded.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/unbounded.safetensors --out $A/unbounded

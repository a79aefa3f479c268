$PY innerpissa.py --model embedded --seed 0 --steps 36 --layer 15 --out $A/layer15.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/layer15.safetensors --out $A/layer15

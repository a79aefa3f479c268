$PY innerpissa.py --model embedded --seed 0 --steps 36 --mono-weight 30 --mono-margin 0.2 --out $A/mono30.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/mono30.safetensors --out $A/mono30

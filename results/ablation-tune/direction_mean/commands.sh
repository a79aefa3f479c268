$PY innerpissa.py --model embedded --seed 0 --steps 36 --direction mean --out $A/direction_mean.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/direction_mean.safetensors --out $A/direction_mean

$PY innerpissa.py --model embedded --seed 0 --steps 36 --mono-weight 0 --out $A/no_mono.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/no_mono.safetensors --out $A/no_mono

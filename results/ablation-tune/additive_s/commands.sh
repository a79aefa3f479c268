$PY innerpissa.py --model embedded --seed 0 --steps 36 --scaling add --out $A/additive_s.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/additive_s.safetensors --out $A/additive_s

$PY innerpissa.py --model embedded --seed 0 --steps 36 --max-pairs 185 --out $A/few_pairs.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/few_pairs.safetensors --out $A/few_pairs

$PY innerpissa.py --model embedded --seed 0 --steps 36 --kl-tau 0.15 --out $A/kl_tau_015.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/kl_tau_015.safetensors --out $A/kl_tau_015

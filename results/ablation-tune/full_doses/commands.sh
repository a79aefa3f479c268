$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 4 --doses -1 -0.5 0.5 1 --methods base --artifacts $A/full.safetensors --out $A/full_doses

$PY baselines.py pca --model embedded --seed 0 --max-pairs 64 --out $A/pca.safetensors
$PY baselines.py random --model embedded --seed 0 --max-pairs 64 --out $A/random.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/pca.safetensors $A/random.safetensors --out $A/reference

$PY innerpissa.py --model embedded --seed 0 --steps 36 --warmup 0 --clip 0 --out $A/no_warmup_clip.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/no_warmup_clip.safetensors --out $A/no_warmup_clip

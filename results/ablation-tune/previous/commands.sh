$PY innerpissa.py --model embedded --seed 0 --steps 36 --even-weight 0 --mono-weight 0 --coherence nll --max-angle 0 --include-readout --warmup 0 --clip 0 --out $A/previous.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/previous.safetensors --out $A/previous

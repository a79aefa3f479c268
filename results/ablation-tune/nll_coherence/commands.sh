$PY innerpissa.py --model embedded --seed 0 --steps 36 --coherence nll --out $A/nll_coherence.safetensors
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 60 --kl 0.1 --null 0 --methods base --artifacts $A/nll_coherence.safetensors --out $A/nll_coherence

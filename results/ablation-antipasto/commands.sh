# The tune-half ablation of the authors' recipe. Trainings ran in a clone at commit 40590d6 (cwd /work/abl-run,
# A=runs/abl2, PY=.venv/bin/python of the main checkout), one at a time; the evaluation ran at commit da3fc98.
# Earlier artifacts it re-scores: runs/antipasto-tune/antipasto.safetensors and runs/readout-tune/readout.safetensors
# (results/objective-tune/commands.sh), runs/abl/{topdirs,budget140}.safetensors (results/objective-tune/antipasto-parts/commands.sh),
# runs/abl2/oracle.safetensors = the oracle of the reported full run (results/offline-20261129-143223/commands.sh: fitted on the tune half).
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 143 --seed 1 --out $A/antipasto_s1.safetensors
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 143 --seed 0 --subspace 0 --out $A/no_subspace.safetensors
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 143 --seed 0 --reference mean --out $A/mean_reference.safetensors
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 143 --seed 0 --coherence-weight 0 --out $A/no_tv.safetensors
$PY innerpissa.py --model embedded --probes data/probes.csv --steps 143 --seed 0 --mono-margin 0 --out $A/no_margin.safetensors
$PY innerpissa.py --model embedded --probes data/probes.csv --objective readout --steps 500 --seed 1 --out $A/readout_s1.safetensors
$PY baselines.py pca --model embedded --seed 0 --max-pairs 64 --probes data/probes.csv --out $A/pca.safetensors
$PY baselines.py random --model embedded --seed 0 --max-pairs 64 --probes data/probes.csv --out $A/random.safetensors
# then, at commit da3fc98 (cwd: the main checkout; A=the clone's runs/):
$PY eval_dilemmas.py --model embedded --split tune --max-dilemmas 48 --null 16 --methods base --artifacts $A/antipasto-tune/antipasto.safetensors $A/abl2/antipasto_s1.safetensors $A/readout-tune/readout.safetensors $A/abl2/readout_s1.safetensors $A/abl2/no_subspace.safetensors $A/abl2/mean_reference.safetensors $A/abl2/no_tv.safetensors $A/abl2/no_margin.safetensors $A/abl/topdirs.safetensors $A/abl/budget140.safetensors $A/abl2/pca.safetensors $A/abl2/random.safetensors $A/abl2/oracle.safetensors --out $A/abl2/eval
# the table: python table.py runs/abl2/eval/results.json (cwd: the clone)

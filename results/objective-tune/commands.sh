# Which objective is the default: both recipes at ≥ 2,000 pair-examples (the authors' smallest working
# budget), seed 0, sign from data/probes.csv only, scored on 48 Truthfulness dilemmas of the TUNE half.
# Run at commit 7fd6176 (antipasto) and 120b519 (readout; its code is the same in both); outputs: */results.json, */log.txt.
.venv/bin/python innerpissa.py --model embedded --objective antipasto --steps 143 --seed 0 --probes data/probes.csv --out runs/antipasto-tune/antipasto.safetensors
.venv/bin/python eval_dilemmas.py --model embedded --split tune --max-dilemmas 48 --artifacts runs/antipasto-tune/antipasto.safetensors --methods base --null 0 --out runs/antipasto-tune/eval
.venv/bin/python innerpissa.py --model embedded --objective readout --steps 500 --seed 0 --probes data/probes.csv --out runs/readout-tune/readout.safetensors
.venv/bin/python eval_dilemmas.py --model embedded --split tune --max-dilemmas 48 --artifacts runs/readout-tune/readout.safetensors --methods base --null 0 --out runs/readout-tune/eval

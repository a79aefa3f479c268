# The other half of the localisation in commands.sh: the hinge's orientation fixed (--deviate fixed-orientation) with
# the authors' projection term kept (weight 1), so that the two changes of FIXED=1 are seen apart. Same pairs, probes,
# seed, windows and evaluation seed as commands.sh (run it first: it writes the pairs and probes); the evaluation
# without its own null (--null 0) for time: with the same --seed its 16 directions are those of commands.sh's runs
# (p95 0.0079 in results-s0.json).
# Usage: SEEDS=0 bash results/pairs-hinge/fixed-proj.sh   (from the repository root; ~35 min a seed on 2 cores)
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/pairs-hinge}
for s in ${SEEDS:-0}; do
  $PY innerpissa.py --model embedded --seed $s --steps 143 --deviate reply-window fixed-orientation \
    --pairs $R/answer_pairs.csv --probes data/probes.csv $R/tune_probes.csv --out $R/fixed-proj-s$s.safetensors > $R/train-fixed-proj-s$s.log 2>&1
  $PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --null 0 --artifacts $R/fixed-proj-s$s.safetensors \
    --methods base --out $R/eval-fixed-proj-s$s > $R/eval-fixed-proj-s$s.log 2>&1
done
# -> fixed-proj-eval-sN.md, fixed-proj-results-sN.json, fixed-proj-training-summary-sN.txt

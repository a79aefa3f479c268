# The other half of the localisation in commands.sh: the hinge's orientation fixed (--deviate fixed-orientation) with
# the authors' projection term kept (weight 1), so that the two changes of FIXED=1 are seen apart. Same pairs, probes,
# seed, windows and evaluation seed as commands.sh (the pairs and probes are written as there when missing). NULL=0
# evaluates without a null for time: with the same --seed its 16 directions are those of commands.sh's runs (p95
# 0.0079 in results-s0.json); NULL=16 scores them in the same run. WINDOWS=row keeps the authors' whole-row windows, so
# that fixed-orientation is the only switch of ours (outputs fixed-row-*; results/pairs-whole-row/ is their recipe
# unchanged); ~29 s a step on 2 cores against 13–19 with reply windows.
# Usage: [WINDOWS=row] SEEDS=0 NULL=0 bash results/pairs-hinge/fixed-proj.sh   (from the repository root)
# Time on 2 cores: 35–56 min a seed, 55–66 with NULL=16.
# Ran: SEEDS=0 NULL=0 at 8069301 (2026-12-06); SEEDS=1 NULL=16 at 8c70c94 (2026-12-07; training code as 8069301);
# SEEDS=2 NULL=0 at c50261f and SEEDS=3 NULL=16 at 311dbd2 (2026-12-07, the same training code); WINDOWS=row SEEDS=0
# NULL=0 at 311dbd2's code (2026-12-07, 79 min); SEEDS=4 and SEEDS=5 NULL=0 at f6e07c2 (2026-12-07, the same training code).
set -euo pipefail
PY=${PY:-.venv/bin/python} R=${RUN:-runs/pairs-hinge}
mkdir -p $R
if [ "${WINDOWS:-reply}" = row ]; then DEVIATE=fixed-orientation N=fixed-row; else DEVIATE="reply-window fixed-orientation" N=fixed-proj; fi
[ -f $R/tune_probes.csv ] || $PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $R/tune_probes.csv
[ -f $R/answer_pairs.csv ] || $PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $R/answer_pairs.csv
for s in ${SEEDS:-0}; do
  $PY innerpissa.py --model embedded --seed $s --steps 143 --deviate $DEVIATE \
    --pairs $R/answer_pairs.csv --probes data/probes.csv $R/tune_probes.csv --out $R/$N-s$s.safetensors > $R/train-$N-s$s.log 2>&1
  $PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --null ${NULL:-0} --artifacts $R/$N-s$s.safetensors \
    --methods base --out $R/eval-$N-s$s > $R/eval-$N-s$s.log 2>&1
done
# -> $N-eval-sN.md, $N-results-sN.json, $N-training-summary-sN.txt in results/pairs-hinge/ (N: fixed-proj or fixed-row)

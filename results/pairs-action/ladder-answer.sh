# The format ladder of ladder.sh on the answer-pair adapters (each Yes/No prompt answered honestly / not), the ones
# whose Yes/No E is known: pairs-whole-row seed 0 and pairs-sign seeds 0 and 1, each at its test-half c*. Their
# action format is in in-format.txt. No null here: the evaluations these c* come from used the main run's seed, so
# the 16 directions and doses of ladder.txt's null apply (p95 of |E_k|: question 0.514, letter 0.013).
# Run from the repository root after results/pairs-whole-row/commands.sh and results/sign-at-dose part 2:
#   bash results/pairs-action/ladder-answer.sh > results/pairs-action/ladder-answer.txt
set -euo pipefail
PY=${PY:-.venv/bin/python}
for F in question letter; do
  $PY results/pairs-action/in_format.py --format $F - runs/pairs-whole-row/innerpissa-s0.safetensors@0.4154 \
    runs/pairs-sign/innerpissa-s0.safetensors@0.3388 runs/pairs-sign/innerpissa-s1.safetensors@0.3405
done

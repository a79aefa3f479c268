# Where the action-pair adapters' effect stops carrying over: in_format.py in its three formats (the pairs' own
# format; the evaluation's Yes/No prompt continued by the action's text; both actions listed as A and B, scored at
# the letter), each with the null of the evaluation's results.json (the main run's seed: the same 16 directions and
# doses for every eval-test-* here), on the action-pair adapters of seeds 0 and 1 and pca from the same pairs, each
# at the c* its test-half evaluation found. The evaluation's own Yes/No E is in those results.json.
# Run from the repository root after commands.sh (SEED=0 and 1) and pca.sh:
#   bash results/pairs-action/ladder.sh > results/pairs-action/ladder.txt
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-action}
c_star() { $PY -c "import json; print(json.load(open('$P/eval-test-$1/results.json'))['summary']['$2']['coeff'])"; }
A="$P/innerpissa-s0.safetensors@$(c_star s0 innerpissa) $P/innerpissa-s1.safetensors@$(c_star s1 innerpissa)"
A="$A $P/pca-action.safetensors@$(c_star pca pca)"
for F in action question letter; do
  $PY results/pairs-action/in_format.py --format $F $P/eval-test-s0/results.json $A
done

# Does the base model's Yes/No answer read its preference between a dilemma's two actions? in_format.py's g_i(0) in
# its three formats (no steerer, no null) against the evaluation's own base scores (rows.csv), dilemma by dilemma.
# Run from the repository root after commands.sh (2 min): bash results/pairs-action/agreement.sh > results/pairs-action/agreement.txt
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-action}
for F in action question letter; do
  $PY results/pairs-action/in_format.py --format $F --base-csv $P/base-$F.csv - > /dev/null
done
$PY results/pairs-action/agreement.py $P/eval-test-s0/rows.csv $P/base-action.csv $P/base-question.csv $P/base-letter.csv

# The in-format check (in_format.py) on the action-pair adapter and on the answer-pair adapters of earlier runs, each at
# the c* its test-half evaluation found, with the null of the action-pair run's evaluation (the main run's seed).
# Run from the repository root after commands.sh (and results/pairs-whole-row/commands.sh, results/sign-at-dose part 2):
#   bash results/pairs-action/in_format.sh > results/pairs-action/in-format.txt
# (in_format.py has since gained --format and scores through score_yes_no; ladder.sh reruns this format with it)
set -euo pipefail
PY=${PY:-.venv/bin/python}
$PY results/pairs-action/in_format.py runs/pairs-action/eval-test-s0/results.json \
  runs/pairs-action/innerpissa-s0.safetensors@0.2550 \
  runs/pairs-whole-row/innerpissa-s0.safetensors@0.4154 \
  runs/pairs-sign/innerpissa-s0.safetensors@0.3388 runs/pairs-sign/innerpissa-s1.safetensors@0.3405

# pca on the action pairs (pca_action.py), evaluated as every artifact is (whole test half, the main run's seed and
# null, sign at the dose on the tune half), then in_format.py on it at its c* (no null: in-format.txt has it).
# Run from the repository root after commands.sh: bash results/pairs-action/pca.sh > results/pairs-action/pca.txt
set -euo pipefail
PY=${PY:-.venv/bin/python} P=${P:-runs/pairs-action}
$PY results/pairs-action/pca_action.py $P/action_pairs.csv $P/pca-action.safetensors
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --doses -1 1 \
  --artifacts $P/pca-action.safetensors --methods base --out $P/eval-test-pca > $P/eval-test-pca.log 2>&1
tr '\r' '\n' < $P/eval-test-pca.log | sed -n '/^| method | c\* | KL/,/^$/p'
tr '\r' '\n' < $P/eval-test-pca.log | grep "^sign from the tune half"
C=$($PY -c "import json; print(json.load(open('$P/eval-test-pca/results.json'))['summary']['pca']['coeff'])")
$PY results/pairs-action/in_format.py - $P/pca-action.safetensors@$C

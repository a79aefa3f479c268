# Run 2026-12-04 at commit 1ecff4b (cwd: the main checkout), 2 cores, nothing else heavy running but short tests
# (the training's steps took 19.5-34 s, 3505 s in all): answer pairs <1 min, training 58 min, eval 651 s.
# The stock-model contrast-pairs control (issue #26, item 3) at the default budget, 143 steps = 2,002 pair-examples
# (results/pairs-stock-20261203/ ran 22 steps); InnerPiSSA only, with --deviate reply-window as that run (whole-row
# windows, the authors', were estimated at 76 s a step then: 3 h). The oracle it is compared with is the main run's
# (results/offline-20261203-071232/, same seed, same test half): the null here is that run's (pca norms, the same 16
# directions; null effects within 4e-7 of its results.json).
# tune_probes.csv: 24 tune dilemmas, which are among the 88 whose answers the pairs are built from, so the
# tune_probes source of the sign is in-sample here; data/probes.csv is not.
# The runner at 1ecff4b cached the chat header all rows share (43 tokens); since ebf5f02 each pair's prompt is cached
# for both its rows, the same loss and gradients (tested) in fewer tokens (results/recipe-timing/answer_steps.txt).
set -euo pipefail
PY=.venv/bin/python OUT=runs/pairs-stock2
$PY eval_dilemmas.py --dilemmas data --split tune --max-dilemmas 24 --write-probes $OUT/tune_probes.csv
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $OUT/answer_pairs.csv
$PY innerpissa.py --model embedded --seed 0 --steps 143 --deviate reply-window --pairs $OUT/answer_pairs.csv \
  --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/innerpissa.safetensors > $OUT/innerpissa.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $OUT/innerpissa.safetensors \
  --methods base --out $OUT/eval-test > $OUT/eval-test.log 2>&1
# results.json, table.md (the evaluation's printed tables) and training-summary.txt (the training's last lines) are
# copied from $OUT.

# Training seed 1, 2026-12-05 at commit 1541140 (the cached step grouped by pair since ebf5f02: 12.8 s a step,
# 2087 s with the sign; nothing else running), the same pairs, probes and evaluation seed (so the same null):
$PY innerpissa.py --model embedded --seed 1 --steps 143 --deviate reply-window --pairs $OUT/answer_pairs.csv \
  --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/innerpissa-s1.safetensors > $OUT/innerpissa-s1.log 2>&1
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $OUT/innerpissa-s1.safetensors \
  --methods base --out $OUT/eval-test-s1 > $OUT/eval-test-s1.log 2>&1
# -> results-s1.json, table-s1.md, training-summary-s1.txt

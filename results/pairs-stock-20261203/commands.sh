# Run at commit 3099454 (cwd: the main checkout), 2026-12-03, 2 cores: answer pairs <1 min, training 1293 s, eval 987 s.
# The stock-model contrast-pairs control (issue #26, item 3), InnerPiSSA only: the oracle it is compared with is the
# main run's (results/offline-20261203-071232/, same seed, same test half, same null seed). tune_probes.csv is that
# run's (eval_dilemmas.py --split tune --max-dilemmas 24 --write-probes).
# The default budget (143 steps) would take 181 min here with the authors' whole-row windows (76.1 s a step) and
# 97 min with --deviate reply-window (40.5 s a step; the estimates innerpissa.py printed): this is the ~15-min budget it
# suggested, 22 steps = 308 pair-examples, 15 % of the default.
set -euo pipefail
PY=.venv/bin/python OUT=runs/pairs-stock
$PY eval_dilemmas.py --model embedded --dilemmas data --split tune --write-pairs $OUT/answer_pairs.csv
$PY innerpissa.py --model embedded --seed 0 --steps 22 --deviate reply-window --pairs $OUT/answer_pairs.csv --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/innerpissa.safetensors 2>&1 | tee $OUT/innerpissa.log
$PY eval_dilemmas.py --model embedded --seed 0 --dilemmas data --split test --artifacts $OUT/innerpissa.safetensors --methods base --out $OUT/eval-test 2>&1 | tee $OUT/eval-test.log

# The authors' own training code (wassname/AntiPaSTO @ 85c09b7) on our planted model, scored by our evaluation.
# Run from /work/main, in order. CPU only, offline (pip reaches only the package registry).
set -euo pipefail
PY=.venv/bin/python
# 1. their code, extracted OUTSIDE the repo (imported, never copied)
mkdir -p /tmp/antipasto-src
AUTHORS_GIT=${AUTHORS_GIT:-/work/.mirror/wassname+AntiPaSTO/repo}   # a clone's .git, or a bare mirror (fetch github:wassname/AntiPaSTO)
git --git-dir=$AUTHORS_GIT archive 85c09b7 | tar -x -C /tmp/antipasto-src
# 2. packages their modules import, into a separate target dir (no torch, --no-deps). peft only here: their adapter
#    is a PEFT tuner, so running THEIR code needs it; our scripts never import it (test_scripts_never_import_peft)
.venv/bin/pip install --no-deps --target /tmp/authors-site peft==0.21.2 pandas==2.3.3 datasets==4.4.1 pyarrow==22.0.0 \
  dill==0.4.0 multiprocess==0.70.18 xxhash==3.6.0 tabulate==0.9.0 cattrs==25.3.0 python-dateutil==2.9.0.post0 \
  pytz==2025.2 tzdata==2025.2 six==1.17.0 httpx==0.28.1 httpcore==1.0.9 scipy==1.15.3
#    (wandb, baukit, bitsandbytes, sklearn: inert stand-ins, see results/authors-code/authors_env.py)
# 3. the planted model (as `bash run.sh control` builds it; deterministic)
$PY planted.py --model embedded --seed 0 --dilemmas data --out runs/planted-authors/planted
# 4. train with their code: their default TrainingConfig, seed 0, 2 epochs (= 2,058 pair-examples, 147 optimiser steps)
PYTHONPATH=/tmp/authors-site $PY results/authors-code/train_authors.py --model runs/planted-authors/planted \
  --seed 0 --epochs 2 --out runs/planted-authors/authors-adapter
cp runs/planted-authors/authors-adapter/summary.json results/authors-code/train-summary.json
#    (their own log and config stay in runs/planted-authors/authors-adapter/: train.log, training_config.json)
# 5. convert to our artifact format and check logits against their PeftModel at c in {-1, 0, +1, ±0.5}
PYTHONPATH=/tmp/authors-site $PY results/authors-code/convert.py --model runs/planted-authors/planted \
  --adapter runs/planted-authors/authors-adapter --out runs/planted-authors/authors.safetensors \
  --report results/authors-code/conversion-check.json
#    the same forward near c = 0: how much of the gap is float32 rounding of their decomposed path
PYTHONPATH=/tmp/authors-site $PY results/authors-code/check_c0.py runs/planted-authors/planted \
  runs/planted-authors/authors-adapter runs/planted-authors/authors.safetensors | grep '^c=' > results/authors-code/check_c0.txt
# 6. our evaluation, test half, exactly as the control run scores our adapter (sign from the tune half)
#    (it prints the table on stdout and writes results.json, rows.csv under --out)
mkdir -p runs/planted-authors/eval
$PY eval_dilemmas.py --model runs/planted-authors/planted --seed 0 --dilemmas data --split test --doses -1 1 \
  --sign-from tune --artifacts runs/planted-authors/authors.safetensors --methods prompt base --out runs/planted-authors/eval \
  > runs/planted-authors/eval/table.md
cp runs/planted-authors/eval/table.md results/authors-code/eval-test.md
cp runs/planted-authors/eval/results.json results/authors-code/results-test.json
# 7. (optional) where their code and ours put the adapter on this model
$PY results/authors-code/compare_selection.py --model runs/planted-authors/planted \
  --summary runs/planted-authors/authors-adapter/summary.json --selection runs/planted-authors/authors-adapter/selection.pt \
  --out results/authors-code/selection-compare.json
# 8. where their direction/subspace collection reads each row (left padding vs attention_mask.sum - 1)
PYTHONPATH=/tmp/authors-site $PY results/authors-code/last_pos_check.py runs/planted-authors/planted | tail -1 \
  > results/authors-code/last_pos_check.txt
# 9. a second training seed, everything else as steps 4–6
PYTHONPATH=/tmp/authors-site $PY results/authors-code/train_authors.py --model runs/planted-authors/planted \
  --seed 1 --epochs 2 --out runs/planted-authors/authors-adapter-s1
cp runs/planted-authors/authors-adapter-s1/summary.json results/authors-code/train-summary-s1.json
PYTHONPATH=/tmp/authors-site $PY results/authors-code/convert.py --model runs/planted-authors/planted \
  --adapter runs/planted-authors/authors-adapter-s1 --out runs/planted-authors/authors-s1.safetensors \
  --report results/authors-code/conversion-check-s1.json
mkdir -p runs/planted-authors/eval-s1
$PY eval_dilemmas.py --model runs/planted-authors/planted --seed 0 --dilemmas data --split test --doses -1 1 \
  --sign-from tune --artifacts runs/planted-authors/authors-s1.safetensors --methods prompt base \
  --out runs/planted-authors/eval-s1 > runs/planted-authors/eval-s1/table.md
cp runs/planted-authors/eval-s1/table.md results/authors-code/eval-test-s1.md
cp runs/planted-authors/eval-s1/results.json results/authors-code/results-test-s1.json

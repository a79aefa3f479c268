# The gain planting (planted.py stage 3), tune half only, at the main checkout, one job at a time on 2 cores, 2026-12-03.
# R: the control run of results/control-20261203-112017/ (its stage-2 planted model $R/planted, `planted.py --model
# embedded --seed 0` at 72dfe46). runs/gain/tune_probes.csv is a copy of $R/tune_probes.csv.
set -euo pipefail
PY=.venv/bin/python R=/tmp/fc-full/runs/20261203-112017-control G=runs/gain G2=runs/gain2 OUT=results/planted-gain

# 1. Stage 2 + gain, at commit 911cf95 + the stage-3 code of 78965f4 (same function)
$PY $OUT/add_gain.py $R/planted $G/planted 1 1
$PY $OUT/check_gain.py $R/planted $G/planted tune > $OUT/check.txt   # printed "gain model − stage 2" then; now the label names argument 1
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --probes data/probes.csv $G/tune_probes.csv --out $G/innerpissa.safetensors 2>&1 | tee $G/innerpissa.log
$PY $OUT/gain_oracle.py $G/planted $G/gain_oracle.safetensors
$PY results/planted-check/gating.py $G/planted default=$G/innerpissa.safetensors gain-oracle=$G/gain_oracle.safetensors > $OUT/gating.txt
# placement: InnerPiSSA on block 14's down_proj alone, the module that holds the gain unit
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --target 'layers\.14\.mlp\.down_proj$' --probes data/probes.csv $G/tune_probes.csv --out $G/block14-down.safetensors 2>&1 | tee $G/block14-down.log
$PY results/planted-check/gating.py $G/planted block14-down=$G/block14-down.safetensors | tail -1 >> $OUT/gating.txt
# the same placement with the uncentred loss subspace (B then sees the persona's mean difference)
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --target 'layers\.14\.mlp\.down_proj$' --deviate uncentred-subspace --probes data/probes.csv $G/tune_probes.csv --out $G/block14-down-uncentred.safetensors 2>&1 | tee $G/block14-down-uncentred.log
$PY results/planted-check/gating.py $G/planted block14-down-uncentred=$G/block14-down-uncentred.safetensors | tail -1 >> $OUT/gating.txt
# the same placement with relative scaling (S ⊙ (1 + cλ))
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --target 'layers\.14\.mlp\.down_proj$' --deviate relative-scaling --probes data/probes.csv $G/tune_probes.csv --out $G/block14-down-relative.safetensors 2>&1 | tee $G/block14-down-relative.log
$PY results/planted-check/gating.py $G/planted block14-down-relative=$G/block14-down-relative.safetensors | tail -1 >> $OUT/gating.txt
$PY $OUT/unit_lambda.py $G/planted $G/block14-down.safetensors $G/block14-down-uncentred.safetensors $G/block14-down-relative.safetensors > $OUT/unit_lambda.txt
# the five adapters on the tune half with the K = 16 null, at commit 65771da (1594 s; eval-tune.md is its printed table,
# eval-tune.json its results.json; gain_oracle is a weight_diff artifact, named so in the table)
$PY eval_dilemmas.py --model $G/planted --seed 0 --dilemmas data --split tune --artifacts $G/innerpissa.safetensors $G/block14-down.safetensors $G/block14-down-uncentred.safetensors $G/block14-down-relative.safetensors $G/gain_oracle.safetensors --methods prompt base --out $G/eval-tune 2>&1 | tee $G/eval-tune.log
cp $G/eval-tune/results.json $OUT/eval-tune.json
tr '\r' '\n' < $G/eval-tune.log | grep -v '^score:' | sed -n '/^evaluated in/,$p' > $OUT/eval-tune.md

# 2. Gain alone (no stage 2), at commit 44fceb3
$PY planted.py --model embedded --seed 0 --steps 0 --gain 1 --gain-persona 2 --out $G2/planted
$PY $OUT/check_gain.py embedded $G2/planted tune > $OUT/check-gain-only.txt
# where each adapter's dose goes: the neutral KL at its c* (from eval-tune.json) of the whole adapter, of the gain
# unit's λ alone, of the rest and of every λ without rotations; at the commit that added the last column (after af1be00)
$PY $OUT/kl_share.py $G/planted $OUT/eval-tune.json innerpissa=$G/innerpissa.safetensors block14-down=$G/block14-down.safetensors block14-down-uncentred=$G/block14-down-uncentred.safetensors block14-down-relative=$G/block14-down-relative.safetensors > $OUT/kl_share.txt

# 3. Scale-only (no rotations: every θ held at 0, only the singular values learn; `--deviate scale-only`, commit abf8bc3),
# 2026-12-04: the default placement, block 14's down_proj with relative scaling, and the same with the uncentred B
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --target 'layers\.14\.mlp\.down_proj$' --deviate relative-scaling scale-only --probes data/probes.csv $G/tune_probes.csv --out $G/block14-down-relative-scaleonly.safetensors > $G/block14-down-relative-scaleonly.log 2>&1
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --deviate scale-only --probes data/probes.csv $G/tune_probes.csv --out $G/scaleonly.safetensors > $G/scaleonly.log 2>&1
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --target 'layers\.14\.mlp\.down_proj$' --deviate uncentred-subspace relative-scaling scale-only --probes data/probes.csv $G/tune_probes.csv --out $G/block14-down-uncentred-relative-scaleonly.safetensors > $G/block14-down-uncentred-relative-scaleonly.log 2>&1
$PY results/planted-check/gating.py $G/planted scale-only=$G/scaleonly.safetensors block14-down-relative-scale-only=$G/block14-down-relative-scaleonly.safetensors block14-down-uncentred-relative-scale-only=$G/block14-down-uncentred-relative-scaleonly.safetensors > $OUT/gating-scaleonly.txt
$PY eval_dilemmas.py --model $G/planted --seed 0 --dilemmas data --split tune --artifacts $G/scaleonly.safetensors $G/block14-down-relative-scaleonly.safetensors $G/block14-down-uncentred-relative-scaleonly.safetensors --methods prompt base --out $G/eval-tune-scaleonly > $G/eval-tune-scaleonly.log 2>&1
cp $G/eval-tune-scaleonly/results.json $OUT/eval-tune-scaleonly.json
tr '\r' '\n' < $G/eval-tune-scaleonly.log | grep -v '^score:' | sed -n '/^evaluated in/,$p' > $OUT/eval-tune-scaleonly.md
$PY $OUT/kl_share.py $G/planted $OUT/eval-tune-scaleonly.json scaleonly=$G/scaleonly.safetensors block14-down-relative-scaleonly=$G/block14-down-relative-scaleonly.safetensors block14-down-uncentred-relative-scaleonly=$G/block14-down-uncentred-relative-scaleonly.safetensors > $OUT/kl_share-scaleonly.txt
$PY $OUT/unit_lambda.py $G/planted $G/innerpissa.safetensors $G/scaleonly.safetensors $G/block14-down-relative-scaleonly.safetensors $G/block14-down-uncentred-relative-scaleonly.safetensors > $OUT/unit_lambda-scaleonly.txt
# each training's last lines (held-out Δ±1, sign) are in $OUT/train-scaleonly.txt
for n in block14-down-relative-scaleonly scaleonly block14-down-uncentred-relative-scaleonly; do echo "== $n"; tr '\r' '\n' < $G/$n.log | grep -v '^train:' | tail -4; done > $OUT/train-scaleonly.txt

# 4. (2026-12-04) the last scale-only row at 10× the learning rate; eval without the null (same model, seed and split:
# the null of eval-tune-scaleonly.md, p95 0.079, applies); and the default recipe without the hinge (gating only)
n=block14-down-uncentred-relative-scaleonly-lr2e-2
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --lr 2e-2 --target 'layers\.14\.mlp\.down_proj$' --deviate uncentred-subspace relative-scaling scale-only --probes data/probes.csv $G/tune_probes.csv --out $G/$n.safetensors > $G/$n.log 2>&1
$PY $OUT/unit_lambda.py $G/planted $G/$n.safetensors > $OUT/unit_lambda-lr.txt
$PY results/planted-check/gating.py $G/planted $n=$G/$n.safetensors > $OUT/gating-lr.txt
$PY eval_dilemmas.py --model $G/planted --seed 0 --dilemmas data --split tune --artifacts $G/$n.safetensors --methods --null 0 --out $G/eval-tune-lr > $G/eval-tune-lr.log 2>&1
$PY innerpissa.py --model $G/planted --seed 0 --steps 143 --mono-weight 0 --probes data/probes.csv $G/tune_probes.csv --out $G/no-hinge.safetensors > $G/no-hinge.log 2>&1
$PY results/planted-check/gating.py $G/planted no-hinge=$G/no-hinge.safetensors | tail -1 >> $OUT/gating-ablation.txt

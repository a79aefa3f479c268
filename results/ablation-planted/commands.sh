# Run at commit a6d32cc (cwd: the main checkout), 2026-12-03, one job at a time on 2 cores: each training ~20 min, the eval 23 min.
# 1. The loss subspace. Its table: the second table.py command in section 2's header (table.py reads the training summary, not the adapters).
# Tune-half ablation of the loss subspace on the planted model of results/control-20261203-112017/
# (its planted model and tune probes; default.safetensors is that run's InnerPiSSA adapter, trained with the
# same command without --deviate).
set -euo pipefail
PY=.venv/bin/python R=/tmp/fc-full/runs/20261203-112017-control OUT=runs/ablate-planted
for dev in uncentred-subspace taskdiff-only; do
  $PY innerpissa.py --model $R/planted --seed 0 --steps 143 --deviate $dev --probes data/probes.csv $R/tune_probes.csv --out $OUT/$dev.safetensors 2>&1 | tee $OUT/$dev.log
done
$PY eval_dilemmas.py --model $R/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/default.safetensors $OUT/uncentred-subspace.safetensors $OUT/taskdiff-only.safetensors --methods prompt base --out $OUT/eval-tune 2>&1 | tee $OUT/eval-tune.log

# ---------------------------------------------------------------------------------------------------------------
# 2. (2026-12-04: trainings from dac6100, the evaluation at 4ea13fd, no training code changed between; cwd: the main checkout, one job at a time on 2 cores) Direction choice, TV barrier
# and hinge, on a planted model rebuilt from the same command as the control's (its planting statistics differ in
# the third digit: fit 0.376 / keep 0.0586 against 0.375 / 0.0584), so the default is retrained on it. Each training
# 13-20 min; the evaluation's null takes pca's per-layer norms (eval_dilemmas.null_norms since 333cf0e).
# Tables: python results/ablation-planted/table.py results/ablation-planted/results-2.json results/ablation-planted/training-summary-2.txt > results/ablation-planted/table-2.md
#         python results/ablation-planted/table.py results/ablation-planted/results.json results/ablation-planted/training-summary.txt > results/ablation-planted/table.md
OUT=runs/ablate-planted2
cp results/control-20261203-112017/tune_probes.csv $OUT/tune_probes.csv
$PY planted.py --model embedded --seed 0 --dilemmas data --out $OUT/planted > $OUT/planted.log 2>&1
run() { name=$1; shift; $PY innerpissa.py --model $OUT/planted --seed 0 --steps 143 "$@" --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/$name.safetensors > $OUT/$name.log 2>&1; }
run default
run top-directions --top-directions
run no-barrier --coherence-weight 0
run no-hinge --mono-weight 0
$PY eval_dilemmas.py --model $OUT/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/default.safetensors $OUT/top-directions.safetensors $OUT/no-barrier.safetensors $OUT/no-hinge.safetensors --methods prompt base --out $OUT/eval-tune > $OUT/eval-tune.log 2>&1
cp $OUT/eval-tune/results.json results/ablation-planted/results-2.json
for n in default top-directions no-barrier no-hinge; do echo "## $n"; tr '\r' '\n' < $OUT/$n.log | grep -v '^train:' | grep -v '^estimated' | tail -4; done > results/ablation-planted/training-summary-2.txt
# the odd change along the planted direction with and without a persona (as results/planted-check/gating.txt)
$PY results/planted-check/gating.py $OUT/planted default=$OUT/default.safetensors top-directions=$OUT/top-directions.safetensors no-barrier=$OUT/no-barrier.safetensors no-hinge=$OUT/no-hinge.safetensors > results/ablation-planted/gating-2.txt
# pca on the same model and tune half: the null must come out the same with a pca artifact scored as without one
$PY baselines.py pca --model $OUT/planted --seed 0 --max-pairs 64 --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/pca.safetensors > $OUT/pca.log 2>&1
$PY eval_dilemmas.py --model $OUT/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/pca.safetensors --methods base --out $OUT/eval-tune-pca > $OUT/eval-tune-pca.log 2>&1
cp $OUT/eval-tune-pca/results.json results/ablation-planted/results-2-pca.json
# the sign calibration's probe gaps bootstrapped pooled (as sign_report) and by Yes/No kind (2026-12-04, after 4ea13fd)
$PY results/ablation-planted/sign_strata.py $OUT/planted data/probes.csv $OUT/tune_probes.csv -- default=$OUT/default.safetensors top-directions=$OUT/top-directions.safetensors no-barrier=$OUT/no-barrier.safetensors no-hinge=$OUT/no-hinge.safetensors > results/ablation-planted/sign_strata.txt

# ---------------------------------------------------------------------------------------------------------------
# 3. (2026-12-04, cwd: the main checkout, one job at a time on 2 cores) Placement and budget on section 2's planted
# model. planted-modules trained at c01014a (sign_report's kind-blind draw), budget-3x at 9b79967 (sign_report draws
# each source's Yes and No probes apart); sign_strata.py prints both draws for both. No other training code changed.
# Placement: InnerPiSSA on the modules the planting changed (innerpissa's data-aware choice needs residual writers,
# so with the top 64 directions; compare section 2's top-directions row). Budget: 3x the default's steps.
# Table: python results/ablation-planted/table.py results/ablation-planted/results-3.json results/ablation-planted/training-summary-3.txt > results/ablation-planted/table-3.md
run planted-modules --top-directions --target 'layers\.(7|8|9|10|11|12|13|14)\.\w+\.(q_proj|k_proj|v_proj|up_proj|gate_proj)$'
run budget-3x --steps 429
$PY eval_dilemmas.py --model $OUT/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/planted-modules.safetensors $OUT/budget-3x.safetensors --methods prompt base --out $OUT/eval-tune-3 > $OUT/eval-tune-3.log 2>&1
cp $OUT/eval-tune-3/results.json results/ablation-planted/results-3.json
for n in planted-modules budget-3x; do echo "## $n"; tr '\r' '\n' < $OUT/$n.log | grep -v '^train:' | grep -v '^estimated' | tail -4; done > results/ablation-planted/training-summary-3.txt
$PY results/planted-check/gating.py $OUT/planted planted-modules=$OUT/planted-modules.safetensors budget-3x=$OUT/budget-3x.safetensors > results/ablation-planted/gating-3.txt
$PY results/ablation-planted/sign_strata.py $OUT/planted data/probes.csv $OUT/tune_probes.csv -- planted-modules=$OUT/planted-modules.safetensors budget-3x=$OUT/budget-3x.safetensors > results/ablation-planted/sign_strata-3.txt

# ---------------------------------------------------------------------------------------------------------------
# 4. (2026-12-04, at 0e027ae plus sign_strata.py's @C) Does the sign calibration resolve with more probes, or at the
# dose? Section 2 and 3's six adapters: the probe gaps at c = ±1 with every tune Truthfulness dilemma as probes
# (176, which are also the rows the tune-half E is read on), and at ±c* (each adapter's dose in results-2/3.json)
# with the probes run.sh uses, and with the shipped probes alone.
$PY eval_dilemmas.py --dilemmas data --split tune --write-probes $OUT/tune_probes_all.csv
$PY results/ablation-planted/sign_strata.py $OUT/planted data/probes.csv $OUT/tune_probes_all.csv -- default=$OUT/default.safetensors top-directions=$OUT/top-directions.safetensors no-barrier=$OUT/no-barrier.safetensors no-hinge=$OUT/no-hinge.safetensors planted-modules=$OUT/planted-modules.safetensors budget-3x=$OUT/budget-3x.safetensors > results/ablation-planted/sign_strata-all.txt
A="default=$OUT/default.safetensors@0.442 top-directions=$OUT/top-directions.safetensors@0.389 no-barrier=$OUT/no-barrier.safetensors@0.415 no-hinge=$OUT/no-hinge.safetensors@0.450 planted-modules=$OUT/planted-modules.safetensors@0.354 budget-3x=$OUT/budget-3x.safetensors@0.244"
$PY results/ablation-planted/sign_strata.py $OUT/planted data/probes.csv $OUT/tune_probes.csv -- $A > results/ablation-planted/sign_strata-dose.txt
$PY results/ablation-planted/sign_strata.py $OUT/planted data/probes.csv -- $A > results/ablation-planted/sign_strata-dose-probes.txt
$PY results/ablation-planted/sign_strata.py $OUT/planted $OUT/tune_probes.csv -- $A > results/ablation-planted/sign_strata-dose-tune.txt

# ---------------------------------------------------------------------------------------------------------------
# 5. (2026-12-04, at 3de98a8) The default recipe trained with seed 1 (other pairs' order, init and held-out split);
# the evaluation keeps seed 0, so its null is section 2's. Table: python results/ablation-planted/table.py results/ablation-planted/results-4.json results/ablation-planted/training-summary-4.txt > results/ablation-planted/table-4.md
$PY innerpissa.py --model $OUT/planted --seed 1 --steps 143 --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/default-seed1.safetensors > $OUT/default-seed1.log 2>&1
$PY eval_dilemmas.py --model $OUT/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/default-seed1.safetensors --methods base --out $OUT/eval-tune-4 > $OUT/eval-tune-4.log 2>&1
cp $OUT/eval-tune-4/results.json results/ablation-planted/results-4.json
(echo "## default-seed1"; tr '\r' '\n' < $OUT/default-seed1.log | grep -v '^train:' | grep -v '^estimated' | tail -4) > results/ablation-planted/training-summary-4.txt

# ---------------------------------------------------------------------------------------------------------------
# 6. (2026-12-04, at cf7fb4d) The placement row of section 3 trained with seed 1; the evaluation keeps seed 0's null.
# Table: python results/ablation-planted/table.py results/ablation-planted/results-5.json results/ablation-planted/training-summary-5.txt > results/ablation-planted/table-5.md
$PY innerpissa.py --model $OUT/planted --seed 1 --steps 143 --top-directions --target 'layers\.(7|8|9|10|11|12|13|14)\.\w+\.(q_proj|k_proj|v_proj|up_proj|gate_proj)$' --probes data/probes.csv $OUT/tune_probes.csv --out $OUT/planted-modules-seed1.safetensors > $OUT/planted-modules-seed1.log 2>&1
$PY eval_dilemmas.py --model $OUT/planted --seed 0 --dilemmas data --split tune --artifacts $OUT/planted-modules-seed1.safetensors --methods base --out $OUT/eval-tune-5 > $OUT/eval-tune-5.log 2>&1
cp $OUT/eval-tune-5/results.json results/ablation-planted/results-5.json
(echo "## planted-modules-seed1"; tr '\r' '\n' < $OUT/planted-modules-seed1.log | grep -v '^train:' | grep -v '^estimated' | tail -4) > results/ablation-planted/training-summary-5.txt

#!/usr/bin/env bash
# Issue #26 item 1: the prompt's odd share on the planted model is < 0.8 (0.46 on the tune half), and most of its
# even part is the persona's own effect (on the stock model the personas move every answer toward Yes; odd share
# 0.07). `planted.py --even-steps N --even-weight W` runs N more stage-2 steps with a term W·e², e the Yes/No change both
# personas share (applied from the first step, in a first version not kept, it kept stage 2 from writing ±s·v). Scored
# with the prompt baseline on the TUNE half only (no null), so the choice never sees the test half.
# -> runs/planted-even/nN-wW/eval-tune (the printed table in eval-tune.md here)
# Usage: STEPS=30 WEIGHTS="1 4" bash results/planted-even/commands.sh; ODD_V=1 WEIGHTS= bash …   (from the repository root;
# ~10 min a build on 2 cores). Ran 2026-12-06 at b760029 (its stage-2 y⁰ read through block_outputs; since through
# harness.yes_no_logratio: the same model and prompts, not rerun).
set -euo pipefail
PY=${PY:-.venv/bin/python}
for w in ${WEIGHTS-1}; do
  out=runs/planted-even/n${STEPS:-30}-w$w
  [ -f "$out/planted/planted.json" ] || $PY planted.py --model embedded --seed 0 --even-steps "${STEPS:-30}" --even-weight "$w" --out "$out/planted"
  $PY eval_dilemmas.py --model "$out/planted" --methods base prompt --split tune --null 0 --seed 0 --out "$out/eval-tune"
done
# Stage 1 made odd (results/planted-even/v_oddness.py): v fitted with u = 1 of the shared-change term and KL bound 0.4,
# written at s = 1 (where that v's own change is odd share 0.83 on the tune half).
if [ -n "${ODD_V:-}" ]; then
  out=runs/planted-even/odd-v
  [ -f "$out/planted/planted.json" ] || $PY planted.py --model embedded --seed 0 --direction-even-weight 1 --direction-kl-tau 0.4 --scale 1 --out "$out/planted"
  $PY eval_dilemmas.py --model "$out/planted" --methods base prompt --split tune --null 0 --seed 0 --out "$out/eval-tune"
fi

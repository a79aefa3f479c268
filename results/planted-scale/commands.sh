#!/usr/bin/env bash
# Strengthen the planting (issue #26 item 1: "if the prompt does not steer with odd share >= 0.8, strengthen it"):
# the planted model at stage 2 scale s = 4 (the default build: s = 2; s = 8 was started and stopped once s = 4 had
# broken the answers), scored with the prompt baseline on the TUNE half only (no null: --null 0), so the choice of s
# never sees the test half. -> s4-eval-tune.md (the printed table), s4-results-tune.json
# Usage: bash results/planted-scale/commands.sh   (from the repository root; ~8 min a scale on 2 cores; 2026-12-06 at 4d3fe45)
set -euo pipefail
PY=${PY:-.venv/bin/python}
for s in ${SCALES:-4}; do
  out=runs/planted-scale/s$s
  [ -f "$out/planted/planted.json" ] || $PY planted.py --model embedded --seed 0 --scale "$s" --out "$out/planted"
  $PY eval_dilemmas.py --model "$out/planted" --methods base prompt --split tune --null 0 --seed 0 --out "$out/eval-tune"
done

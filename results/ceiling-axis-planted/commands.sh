# results/ceiling-axis/ on the planted model: does the persona contrast point where the supervised ceiling moves it?
# cwd: the repository root, 2026-12-03; the script as at this folder's commit (the persona-wording rows fixed: since
# innerpissa.persona takes a template argument, the script's stand-in personas took it as their wording, so every
# wording but the training one gave the same contrast; the stock model's output.txt in results/ceiling-axis/ was
# printed before that argument existed). R: the control run of results/control-20261203-112017/ (`OFFLINE=1 bash
# run.sh control` at 72dfe46): its planted model, its InnerPiSSA adapter and its ceiling (oracle, fitted on the tune
# half of the planted model, so these rows are in-sample for it).
set -euo pipefail
R=/tmp/fc-full/runs/20261203-112017-control
.venv/bin/python results/ceiling-axis/ceiling_axis.py $R/oracle.safetensors $R/innerpissa.safetensors $R/planted > results/ceiling-axis-planted/output.txt

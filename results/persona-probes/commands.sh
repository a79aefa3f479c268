# Does the persona system prompt move the sign probes' Yes/No answers? At commit a047de8, cwd: the repository root.
.venv/bin/python results/persona-probes/persona_probes.py data/probes.csv results/offline-20261129-182131/tune_probes.csv

# One training step in 16 fresh processes, with numpy's SVD (the code) and with torch's. At commit 7930f2e, cwd: the repository root.
for i in $(seq 16); do .venv/bin/python results/determinism/step_hash.py; done | sort | uniq -c > results/determinism/output.txt
for i in $(seq 16); do .venv/bin/python results/determinism/step_hash.py --torch-svd; done | sort | uniq -c | sed 's/^/torch-svd /' >> results/determinism/output.txt

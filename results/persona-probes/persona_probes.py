"""Does the persona system prompt move the sign probes' Yes/No answers? margin(+1) − margin(−1) per probe,
with the prompt baseline's systems (baselines.prompt_system), scored like the sign calibration."""
import sys
import numpy as np
sys.path.insert(0, ".")  # run from the repository root (commands.sh)
import harness, baselines
from innerpissa import bootstrap_interval
model, tok = harness.load_model("embedded")
for path in sys.argv[1:]:
    probes = harness.load_probes(path)
    m = {}
    for c in (1, -1):
        prompts = [harness.yes_no_prompt(tok, p["question"], system=baselines.prompt_system(c)) for p in probes]
        sign = np.array([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in probes])
        m[c] = harness.cached_logratio(model, tok, prompts) * sign
    g = m[1] - m[-1]
    lo, hi = bootstrap_interval(g)
    print(f"{path}: persona prompt margin(+1) - margin(-1) = {g.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] (n={len(g)})")

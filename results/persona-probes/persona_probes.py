"""Does the persona system prompt move the sign probes' Yes/No answers? margin(+1) − margin(−1) per probe,
with the prompt baseline's systems (baselines.prompt_system), scored like the sign calibration."""
import sys

sys.path.insert(0, ".")  # run from the repository root (commands.sh)
import baselines  # noqa: E402
import harness  # noqa: E402
from innerpissa import bootstrap_interval  # noqa: E402

model, tok = harness.load_model("embedded")
for path in sys.argv[1:]:
    probes = harness.load_probes(path)
    plus, minus = (harness.honesty_margins(model, tok, probes, harness.cached_logratio, baselines.prompt_system(c))
                   for c in (1, -1))
    g = plus - minus
    lo, hi = bootstrap_interval(g)
    print(f"{path}: persona prompt margin(+1) - margin(-1) = {g.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] (n={len(g)})")

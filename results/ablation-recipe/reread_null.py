"""Re-read the stock-model ablation's rows against the null in pca's per-layer norms.

The ablation's evaluations scored InnerPiSSA adapters only, so their null had unit norms per layer, which is wider
(results/README.md, "The null once depended on the artifacts scored"). This takes a later evaluation of the same
model, split, dilemmas and --seed that scored only the null, now in pca's norms (eval_dilemmas.null_norms), and
prints each row's null percentile and verdict against both nulls; E, its interval, the odd share and the pmass
ratios are the rows' own, unchanged.

Usage (cwd: the repository root):
    python results/ablation-recipe/reread_null.py NULL_RESULTS.json results/ablation-recipe/results{,-3,-4}.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import eval_dilemmas as ev  # noqa: E402

new = json.load(open(sys.argv[1]))
effects = [n["effect"] for n in new["null"]]
p95 = ev.null_p95(effects)
rows, seen = [], set()
for path in sys.argv[2:]:
    res = json.load(open(path))
    if res["n_target_dilemmas"] != new["n_target_dilemmas"] or res["config"]["seed"] != new["config"]["seed"]:
        raise SystemExit(f"{path}: another dilemma set or seed than {sys.argv[1]}")
    files = res["config"]["artifacts"]
    for name, m in res["summary"].items():
        key = Path(files[name]).stem if name in files else name
        if key not in seen:
            seen.add(key)
            rows.append((key, m))
print("| row | E [95 %] | odd share | null pct / verdict, unit-norm null | null pct / verdict, pca-norm null |")
print("|---|---|---|---|---|")
for key, m in rows:
    again = dict(m, null_p95=p95, null_percentile=ev.null_percentile(m["effect"], effects))
    lo, hi = m["effect_ci"]
    print(f"| {key} | {m['effect']:+.3f} [{lo:+.3f}, {hi:+.3f}] | {m['odd_share']:.2f} | "
          f"{m['null_percentile']:.2f} / {m['verdict']} | {again['null_percentile']:.2f} / {ev.verdict(again)} |")
old_p95 = next(iter(json.load(open(sys.argv[2]))["summary"].values()))["null_p95"]
print(f"\n{new['n_target_dilemmas']} tune-half Truthfulness dilemmas, --seed {new['config']['seed']}; null p95: unit norms "
      f"{old_p95:.4f}, pca's norms {p95:.4f} (E_k from {min(effects):+.3f} to {max(effects):+.3f})")

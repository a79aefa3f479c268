"""Print the tune-half ablation table (markdown) from the eval's results.json and each artifact's metadata.

Usage (cwd: the folder holding runs/): python table.py runs/abl2/eval/results.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root: innerpissa.py
from innerpissa import load_artifact

ROWS = [  # (label, method name in results.json, artifact path, flags)
    ("antipasto, seed 0", "innerpissa:antipasto", "runs/antipasto-tune/antipasto.safetensors", "—"),
    ("antipasto, seed 1", "innerpissa:antipasto_s1", "runs/abl2/antipasto_s1.safetensors", "`--seed 1`"),
    ("readout, seed 0", "innerpissa:readout", "runs/readout-tune/readout.safetensors", "`--objective readout --steps 500`"),
    ("readout, seed 1", "innerpissa:readout_s1", "runs/abl2/readout_s1.safetensors", "`--objective readout --steps 500 --seed 1`"),
    ("− loss subspace (whole residual stream)", "innerpissa:no_subspace", "runs/abl2/no_subspace.safetensors", "`--subspace 0`"),
    ("− per-pair reference (batch mean)", "innerpissa:mean_reference", "runs/abl2/mean_reference.safetensors", "`--reference mean`"),
    ("− TV barrier", "innerpissa:no_tv", "runs/abl2/no_tv.safetensors", "`--coherence-weight 0`"),
    ("− hinge margin (θ = 0)", "innerpissa:no_margin", "runs/abl2/no_margin.safetensors", "`--mono-margin 0`"),
    ("− data-aware directions (top 64)", "innerpissa:topdirs", "runs/abl/topdirs.safetensors", "`--top-directions`"),
    ("budget 140 instead of 2,002", "innerpissa:budget140", "runs/abl/budget140.safetensors", "`--steps 10`"),
    ("pca", "pca", None, "`baselines.py pca --max-pairs 64`"),
    ("random", "random", None, "`baselines.py random --max-pairs 64`"),
    ("oracle (fitted on the tune half: in-sample)", "oracle", None, "`baselines.py oracle --steps 32`"),
]
res = json.load(open(sys.argv[1]))
S = res["summary"]
print("| row | flags | held-out odd share, loss block / output gap | sign (probe gap, 95 % interval) | c* | Δ truth +c* / −c* | E | odd share | pmass ratio +/− | null pct | F1 | arb flips | edit cos to oracle |")
print("|---" * 13 + "|")
for label, name, path, flags in ROWS:
    if name not in S:
        continue
    m = S[name]
    held = sign = "–"
    if path:
        meta = load_artifact(path)[1]
        h, r = meta["heldout"], meta["sign_report"]
        held = f"{h['odd_share_readout']:.2f} / {h['odd_share_output']:.2f}"
        sign = f"{r['sign']:+d} ({r['gap']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}])"
    cos = m.get("edit_cosine_oracle")
    print(f"| {label} | {flags} | {held} | {sign} | {m['coeff']:.3g} | {m['delta_plus']:+.3f} / {m['delta_minus']:+.3f} | "
          f"{m['effect']:+.3f} | {m['odd_share']:.2f} | {m['pmass_ratio_plus']:.2f} / {m['pmass_ratio_minus']:.2f} | "
          f"{m['null_percentile']:.2f} | {m['steering_f1']:.1f} | {m['arbitrary_flips']:.2f} | {'–' if cos is None else f'{cos:+.3f}'} |")
null = [n["effect"] for n in res["null"]]
print(f"\nnull (K = {len(null)}): E_k from {min(null):+.3f} to {max(null):+.3f}; 95th percentile of |E_k| "
      f"{next(iter(S.values()))['null_p95']:.4f}")

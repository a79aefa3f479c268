"""Print the planted-model loss-subspace ablation table (markdown) from the tune-half eval's results.json and
each adapter's metadata.

Usage (cwd: the repository root): python results/ablation-planted/table.py runs/ablate-planted/eval-tune/results.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root: innerpissa.py
from innerpissa import load_artifact  # noqa: E402

ROWS = [  # (label, method name in results.json, adapter in runs/ablate-planted/, flags)
    ("authors' B: taskdiff ∩ suppressed ∩ write (default)", "innerpissa:default", "default", "—"),
    ("taskdiff alone (centred, no intersection)", "innerpissa:taskdiff-only", "taskdiff-only", "`--deviate taskdiff-only`"),
    ("uncentred differences (ours before)", "innerpissa:uncentred-subspace", "uncentred-subspace",
     "`--deviate uncentred-subspace`"),
    ("prompt (InnerPiSSA's wording)", "prompt", None, "—"),
]


def interval(m, key):
    low, high = m[f"{key}_ci"]
    return f"{m[key]:+.3f} [{low:+.3f}, {high:+.3f}]"


res = json.load(open(sys.argv[1]))
S = res["summary"]
print("| loss subspace | flags | sign: pooled gap [95 %] | c* | E [95 %] | Δ₊ / Δ₋ | odd share | pmass ratio +/− | null pct | verdict |")
print("|---" * 10 + "|")
for label, name, stem, flags in ROWS:
    m, sign = S[name], "–"
    if stem:
        r = load_artifact(f"runs/ablate-planted/{stem}.safetensors")[1]["sign_report"]
        sign = f"{r['sign']:+d} ({r['gap']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]{'' if r['certain'] else ', UNCERTAIN'})"
    print(f"| {label} | {flags} | {sign} | {m['coeff']:.3g} | {interval(m, 'effect')} | "
          f"{m['delta_plus']:+.3f} / {m['delta_minus']:+.3f} | {m['odd_share']:.2f} | "
          f"{m['pmass_ratio_plus']:.2f} / {m['pmass_ratio_minus']:.2f} | {m['null_percentile']:.2f} | {m['verdict']} |")
null = [n["effect"] for n in res["null"]]
print(f"\n{res['n_target_dilemmas']} tune-half Truthfulness dilemmas; null (K = {len(null)}): E_k from {min(null):+.3f} "
      f"to {max(null):+.3f}, 95th percentile of |E_k| {next(iter(S.values()))['null_p95']:.4f}")

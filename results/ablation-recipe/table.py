"""Print the stock-model ablation of the authors' recipe (markdown) from the tune-half eval's results.json and
each adapter's metadata: the default at two seeds, then one `--deviate NAME` per row (our earlier choice in
place of the authors' one), then the prompt baseline.

Usage (cwd: the repository root): python results/ablation-recipe/table.py runs/ablate-stock/eval-tune-2/results.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root: innerpissa.py
from innerpissa import load_artifact  # noqa: E402

RUNS = Path("runs/ablate-stock")
ROWS = [  # (label, adapter stem in runs/ablate-stock/ or None, flags)
    ("authors' recipe, seed 0", "default", "—"),
    ("authors' recipe, seed 1", "default-s1", "`--seed 1`"),
    ("B from uncentred differences (issue item 1)", "uncentred-subspace", "`--deviate uncentred-subspace`"),
    ("B: taskdiff alone", "taskdiff-only", "`--deviate taskdiff-only`"),
    ("⌈r/3⌉ lists, diff-score padding (2)", "ceil-lists", "`--deviate ceil-lists`"),
    ("our std floor and clamp (3)", "plain-floors", "`--deviate plain-floors`"),
    ("focus exponent 0.75·t (3)", "linear-focus", "`--deviate linear-focus`"),
    ("TV pooled over tokens (4)", "pooled-tv", "`--deviate pooled-tv`"),
    ("one hinge margin per batch (5)", "batch-margin", "`--deviate batch-margin`"),
    ("small rotation init (6)", "small-init", "`--deviate small-init`"),
    ("S ⊙ (1 + cλ) instead of S + cΔS (6)", "relative-scaling", "`--deviate relative-scaling`"),
    ("14 pairs per forward (7)", "whole-batch", "`--deviate whole-batch`"),
    ("Frobenius bound 0.5", "frobenius-bound", "`--deviate frobenius-bound`"),
    ("hinge oriented by the projection", "projection-orientation", "`--deviate projection-orientation`"),
    ("reply-token windows", "reply-window", "`--deviate reply-window`"),
    ("our persona template", "our-template", "`--deviate our-template`"),
    ("cosine schedule", "cosine-schedule", "`--deviate cosine-schedule`"),
    ("prompt (InnerPiSSA's wording)", None, "—"),
]


def interval(m, key):
    low, high = m[f"{key}_ci"]
    return f"{m[key]:+.3f} [{low:+.3f}, {high:+.3f}]"


res = json.load(open(sys.argv[1]))
S = res["summary"]
print("| row | flags | held-out odd share, loss block / output gap | sign: pooled gap [95 %] | c* | E [95 %] | "
      "Δ₊ / Δ₋ | odd share | pmass ratio +/− | null pct | verdict |")
print("|---" * 11 + "|")
for label, stem, flags in ROWS:
    name = f"innerpissa:{stem}" if stem else "prompt"
    if name not in S:
        continue
    m, held, sign = S[name], "–", "–"
    if stem:
        meta = load_artifact(RUNS / f"{stem}.safetensors")[1]
        h, r = meta["heldout"], meta["sign_report"]
        held = f"{h['odd_share_readout']:.2f} / {h['odd_share_output']:.2f}"
        sign = f"{r['sign']:+d} ({r['gap']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}]{'' if r['certain'] else ', UNCERTAIN'})"
    print(f"| {label} | {flags} | {held} | {sign} | {m['coeff']:.3g} | {interval(m, 'effect')} | "
          f"{m['delta_plus']:+.3f} / {m['delta_minus']:+.3f} | {m['odd_share']:.2f} | "
          f"{m['pmass_ratio_plus']:.2f} / {m['pmass_ratio_minus']:.2f} | {m['null_percentile']:.2f} | {m['verdict']} |")
null = [n["effect"] for n in res["null"]]
print(f"\n{res['n_target_dilemmas']} tune-half Truthfulness dilemmas; null (K = {len(null)}): E_k from {min(null):+.3f} "
      f"to {max(null):+.3f}, 95th percentile of |E_k| {next(iter(S.values()))['null_p95']:.4f}")

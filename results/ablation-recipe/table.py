"""Print the stock-model ablation of the authors' recipe (markdown) from the tune-half evaluations' results.json
and each adapter's metadata: the default at two seeds, then one `--deviate NAME` per row (our earlier choice in
place of the authors' one), each at a second seed where one was trained, then the prompt baseline. Rows no file
holds are left out. With --by-seed, instead: one row per flag, E and verdict at each seed, from the files alone.

Each row comes from the first file that holds it. The evaluations ran with the same --seed: the script checks that
every file's null and every row two files share agree (largest difference printed), then reports the first file's
null. results-5.json's null differs from the others': it took pca's per-layer norms (eval_dilemmas.null_norms, since
e7efcc8), they unit norms (results-null-pca.json is theirs re-drawn with pca's norms; reread-null.md).

Usage (cwd: the repository root):
    python results/ablation-recipe/table.py runs/ablate-stock/eval-tune-{2,3,4}/results.json
    python results/ablation-recipe/table.py --by-seed results/ablation-recipe/results{,-3,-4,-5}.json
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root: innerpissa.py
from innerpissa import load_artifact  # noqa: E402

RUNS = Path("runs/ablate-stock")
FLAGS = [  # (label, --deviate name): one row per flag, its adapter runs/ablate-stock/NAME(.safetensors), -s1 at seed 1
    ("B from uncentred differences (issue item 1)", "uncentred-subspace"),
    ("B: taskdiff alone", "taskdiff-only"),
    ("⌈r/3⌉ lists, diff-score padding (2)", "ceil-lists"),
    ("our std floor and clamp (3)", "plain-floors"),
    ("focus exponent 0.75·t (3)", "linear-focus"),
    ("TV pooled over tokens (4)", "pooled-tv"),
    ("one hinge margin per batch (5)", "batch-margin"),
    ("small rotation init (6)", "small-init"),
    ("S ⊙ (1 + cλ) instead of S + cΔS (6)", "relative-scaling"),
    ("14 pairs per forward (7)", "whole-batch"),
    ("Frobenius bound 0.5", "frobenius-bound"),
    ("hinge oriented by the projection", "projection-orientation"),
    ("reply-token windows", "reply-window"),
    ("our persona template", "our-template"),
    ("cosine schedule", "cosine-schedule"),
]
ROWS = ([("authors' recipe, seed 0", "default", "—"), ("authors' recipe, seed 1", "default-s1", "`--seed 1`")]
        + [row for label, name in FLAGS for row in ((label, name, f"`--deviate {name}`"),
                                                    (f"{label}, seed 1", f"{name}-s1", f"`--deviate {name} --seed 1`"))]
        + [("prompt (InnerPiSSA's wording)", None, "—")])   # (label, adapter stem in runs/ablate-stock/ or None, flags)


def interval(m, key):
    low, high = m[f"{key}_ci"]
    return f"{m[key]:+.3f} [{low:+.3f}, {high:+.3f}]"


def largest_gap(a, b, keys):
    """Largest |a[k] − b[k]| over keys (numbers only)."""
    return max(abs(a[k] - b[k]) for k in keys if isinstance(a.get(k), (int, float)))


def by_stem(result):
    """{row key: summary entry}: an adapter's by its file stem (an evaluation of one adapter names it only by its
    kind), the prompt's as "prompt"."""
    files = result["config"]["artifacts"]
    return {(Path(files[name]).stem if name in files else name): m for name, m in result["summary"].items()}


def by_seed(S):
    """One row per flag: E [95 %] and verdict at seed 0 and at seed 1 (– where a seed was not trained)."""
    def cell(m):
        return "–" if m is None else f"{interval(m, 'effect')}, {m['verdict']}"
    print("| row | flags | seed 0: E [95 %], verdict | seed 1: E [95 %], verdict |\n|---|---|---|---|")
    for label, stem, flags in ROWS:
        if stem and not stem.endswith("-s1") and (stem in S or f"{stem}-s1" in S):
            print(f"| {label.removesuffix(', seed 0')} | {flags} | {cell(S.get(stem))} | {cell(S.get(stem + '-s1'))} |")


by_seed_only = "--by-seed" in sys.argv
results = [json.load(open(path)) for path in sys.argv[1:] if path != "--by-seed"]
res, S = results[0], {}
for other in results:
    for name, m in by_stem(other).items():
        S.setdefault(name, m)
        if m is not S[name]:      # a row two evaluations share: they must agree
            gap = largest_gap(S[name], m, ("coeff", "kl", "effect", "delta_plus", "delta_minus", "odd_share"))
            print(f"<!-- {name}: scored in two evaluations, largest difference {gap:.2g} -->")
    if other is not res:
        gap = max(largest_gap(a, b, ("coeff", "kl", "effect")) for a, b in zip(res["null"], other["null"]))
        print(f"<!-- null: {len(other['null'])} directions in a later evaluation, largest difference {gap:.2g} -->")
if by_seed_only:
    by_seed(S)
    sys.exit()
print("| row | flags | held-out odd share, loss block / output gap | sign: pooled gap [95 %] | c* | E [95 %] | "
      "Δ₊ / Δ₋ | odd share | pmass ratio +/− | null pct | verdict |")
print("|---" * 11 + "|")
for label, stem, flags in ROWS:
    name = stem or "prompt"
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

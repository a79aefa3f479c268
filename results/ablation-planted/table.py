"""Print a planted-model ablation table (markdown) from one tune-half evaluation's results.json and the training
summary of its adapters (the `## stem` sections of training-summary*.txt: each training's last lines).

The first evaluation (results.json, training-summary.txt) ablates the loss subspace; the second (results-2.json,
training-summary-2.txt) the direction choice, the TV barrier and the hinge, with the default retrained on a
rebuilt planted model; the third (results-3.json, training-summary-3.txt) placement and budget on that model; the
fourth and fifth (results-4/5.json, training-summary-4/5.txt) the default and the placement row trained with seed 1.
Everything is read from files in this folder, so the tables can be printed without the adapters.

Usage (cwd: the repository root):
    python results/ablation-planted/table.py results/ablation-planted/results.json results/ablation-planted/training-summary.txt
    python results/ablation-planted/table.py results/ablation-planted/results-2.json results/ablation-planted/training-summary-2.txt
    python results/ablation-planted/table.py results/ablation-planted/results-3.json results/ablation-planted/training-summary-3.txt
    python results/ablation-planted/table.py results/ablation-planted/results-4.json results/ablation-planted/training-summary-4.txt
    python results/ablation-planted/table.py results/ablation-planted/results-5.json results/ablation-planted/training-summary-5.txt
"""
import json
import re
import sys
from pathlib import Path

ROWS = {  # adapter stem: (what the row changes, flags)
    "default": ("the authors' recipe (B: taskdiff ∩ suppressed ∩ write; data-aware directions; barrier; hinge)", "—"),
    "taskdiff-only": ("B: taskdiff alone (centred, no intersection)", "`--deviate taskdiff-only`"),
    "uncentred-subspace": ("B: uncentred differences (ours before)", "`--deviate uncentred-subspace`"),
    "top-directions": ("directions: the top 64 singular triplets, not chosen from data", "`--top-directions`"),
    "no-barrier": ("no TV barrier (coherence weight 0)", "`--coherence-weight 0`"),
    "no-hinge": ("no hinge (its weight 0)", "`--mono-weight 0`"),
    "planted-modules": ("placement: the planted modules (q/k/v/up/gate of blocks 7–14), top 64 directions",
                        "`--top-directions --target REGEX` (commands.sh, section 3)"),
    "budget-3x": ("budget: 3× the steps (429, 6,006 pair-examples)", "`--steps 429`"),
    "default-seed1": ("the authors' recipe, training seed 1 (evaluation seed 0, so the same null)", "`--seed 1`"),
    "planted-modules-seed1": ("placement on the planted modules, training seed 1", "`--seed 1 --top-directions --target REGEX`"),
}
HELD = re.compile(r"Δ\+1 (\S+)\s+Δ0 (\S+)\s+Δ-1 (\S+); odd share loss block (\S+), output gap (\S+)")
SIGN = re.compile(r"sign ([+-]1) from .*?pooled (\S+) \[(\S+), (\S+)\]")


def summaries(path):
    """{stem: (held-out cell, sign cell)} from a training summary's `## stem` sections."""
    out = {}
    for section in Path(path).read_text().split("## ")[1:]:
        stem, text = section.split("\n", 1)
        held = HELD.search(text).groups()
        line = next(line for line in text.splitlines() if line.lstrip().startswith("sign "))
        sign = SIGN.search(line).groups()
        out[stem.strip()] = (f"{held[0]} / {held[1]} / {held[2]}; {held[3]} / {held[4]}",
                             f"{sign[0]} ({sign[1]} [{sign[2]}, {sign[3]}]{', UNCERTAIN' if 'UNCERTAIN' in line else ''})")
    return out


def interval(m, key):
    low, high = m[f"{key}_ci"]
    return f"{m[key]:+.3f} [{low:+.3f}, {high:+.3f}]"


res, trained = json.load(open(sys.argv[1])), summaries(sys.argv[2])
files = res["config"]["artifacts"]
print("| row | flags | held-out Δ at c = +1 / 0 / −1; odd share, loss block / output gap | sign: pooled gap [95 %] "
      "| c* | E [95 %] | Δ₊ / Δ₋ | odd share | pmass ratio +/− | null pct | verdict |")
print("|---" * 11 + "|")
for name, m in sorted(res["summary"].items(), key=lambda kv: kv[0] == "prompt"):
    stem = Path(files[name]).stem if name in files else None
    label, flags = ROWS[stem] if stem else ("prompt (InnerPiSSA's wording)", "—")
    held, sign = trained[stem] if stem else ("–", "–")
    print(f"| {label} | {flags} | {held} | {sign} | {m['coeff']:.3g} | {interval(m, 'effect')} | "
          f"{m['delta_plus']:+.3f} / {m['delta_minus']:+.3f} | {m['odd_share']:.2f} | "
          f"{m['pmass_ratio_plus']:.2f} / {m['pmass_ratio_minus']:.2f} | {m['null_percentile']:.2f} | {m['verdict']} |")
null = [n["effect"] for n in res["null"]]
print(f"\n{res['n_target_dilemmas']} tune-half Truthfulness dilemmas; null (K = {len(null)}): E_k from {min(null):+.3f} "
      f"to {max(null):+.3f}, 95th percentile of |E_k| {next(iter(res['summary'].values()))['null_p95']:.4f}")

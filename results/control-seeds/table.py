"""The table of results/control-seeds/: per training seed, the sign calibration and the evaluation on both halves.

raw E = sign · E: the adapter's own orientation before the calibration flipped it (E is read after it).
Usage: python results/control-seeds/table.py runs/control-seeds > results/control-seeds/table.md
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from innerpissa import load_artifact  # noqa: E402

run = Path(sys.argv[1])
halves = {h: json.load(open(run / f"eval-{h}" / "results.json")) for h in ("test", "tune")}
print("| seed | sign: pooled gap [95 %] | half | c* | E [95 % CI] | raw E | odd share | pmass ratio +/− "
      "| null pct (p95) | verdict |")
print("|---|---|---|---|---|---|---|---|---|---|")
for seed in (0, 1, 2):
    meta = load_artifact(run / f"innerpissa-s{seed}.safetensors")[1]
    report = meta["sign_report"]
    lo, hi = report["ci"]
    uncertain = not (report["certain"] and report["agree"])
    sign = f"{int(meta['sign']):+d} ({report['gap']:+.3f} [{lo:+.3f}, {hi:+.3f}]{', UNCERTAIN' if uncertain else ''})"
    for half, res in halves.items():
        s = res["summary"][f"innerpissa:innerpissa-s{seed}"]
        e_lo, e_hi = s["effect_ci"]
        print(f"| {seed} | {sign if half == 'test' else ''} | {half} | {s['coeff']:.4g} | {s['effect']:+.3f} "
              f"[{e_lo:+.3f}, {e_hi:+.3f}] | {meta['sign'] * s['effect']:+.3f} | {s['odd_share']:.2f} | "
              f"{s['pmass_ratio_plus']:.2f} / {s['pmass_ratio_minus']:.2f} | {s['null_percentile']:.2f} "
              f"({s['null_p95']:.3f}) | {s['verdict']} |")

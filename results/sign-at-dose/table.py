"""A table of results/sign-at-dose/: per adapter (a training seed), the training's sign, the tune half's at the dose, and
the test half's E under each.

The evaluation scored the test half in the tune half's orientation; the training's orientation swaps +c* and −c*
when the two disagree (sign_tune = −1), so its E is sign_tune · E, its odd share the same, exactly.
Usage: python results/sign-at-dose/table.py RUN EVAL_DIR > TABLE   (RUN holds the adapters EVAL_DIR's results.json
scored, under the file names it names them by; commands.sh has the two calls)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from innerpissa import load_artifact  # noqa: E402

run, eval_dir = Path(sys.argv[1]), Path(sys.argv[2])
summary = json.load(open(eval_dir / "results.json"))["summary"]
ci = lambda lo_hi: f"[{lo_hi[0]:+.3f}, {lo_hi[1]:+.3f}]"
certain = lambda r: "" if r["certain"] and r.get("agree", True) else ", UNCERTAIN"   # as describe_sign says it
print("| adapter | training's sign: pooled probe gap [95 %] at ±1 | tune half at ±c*: E, training's sign [95 %] (orientation) | c* "
      "| test E, training's sign | test E [95 % CI], tune sign | odd share | null pct (p95) | verdict, tune sign |")
print("|---|---|---|---|---|---|---|---|---|")
for name, s in summary.items():
    stem = name.split(":")[-1]
    meta = load_artifact(run / f"{stem}.safetensors")[1]
    report = meta["sign_report"]
    tune = s["sign_tune"]
    print(f"| {stem} | {int(meta['sign']):+d} ({report['gap']:+.3f} {ci(report['ci'])}{certain(report)}) "
          f"| {tune['effect']:+.3f} {ci(tune['ci'])} ({tune['sign']:+d}{certain(tune)}) | {s['coeff']:.4g} "
          f"| {tune['sign'] * s['effect']:+.3f} | {s['effect']:+.3f} {ci(s['effect_ci'])} | {s['odd_share']:.2f} "
          f"| {s['null_percentile']:.2f} ({s['null_p95']:.3f}) | {s['verdict']} |")

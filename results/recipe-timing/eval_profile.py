"""Where the evaluation's CPU time goes, by torch operator: eval_dilemmas.evaluate as bench.py --eval runs it (8 test
dilemmas, base and prompt, bench's three artifacts: an InnerPiSSA adapter with random θ, pca from 16 pairs, random;
a K = 4 null; doses ±1, ±2; lower blocks replayed) under torch.profiler, then the operators' shares of the self CPU
time, grouped: matrix products (mm, bmm, attention), elementwise and copying work, the rest. Each part of evaluate
(rows, null rows, arbitrary items, neutral KL) is also timed (bench.Clock), and last one scoring of the
rows with and without the NLL, twice each (the vocabulary head at every question token or at the last only).

Usage (cwd: the repository root, nothing else running; ~7 min on 2 cores): python results/recipe-timing/eval_profile.py
"""
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import bench  # noqa: E402
import dilemmas  # noqa: E402
import eval_dilemmas as ev  # noqa: E402
import harness  # noqa: E402

MATMUL = {"aten::mm", "aten::bmm", "aten::addmm", "aten::_scaled_dot_product_flash_attention_for_cpu"}
ELEMENTWISE = {"aten::mul", "aten::sub", "aten::exp", "aten::exp_", "aten::add", "aten::add_", "aten::silu",
               "aten::pow", "aten::neg", "aten::rsqrt", "aten::div", "aten::div_", "aten::cat", "aten::copy_",
               "aten::where", "aten::sum", "aten::mean", "aten::_log_softmax", "aten::logsumexp", "aten::max"}

torch.set_num_threads(2)
model, tok = harness.load_model("embedded")
model.requires_grad_(False)
rows = dilemmas.load_dilemmas("data", split="test", max_dilemmas=8)
arbitrary, neutral = [a["question"] for a in dilemmas.load_arbitrary()], dilemmas.load_neutral()
with tempfile.TemporaryDirectory() as folder:
    artifacts = bench.bench_artifacts(model, tok, Path(folder))
    with bench.Clock() as clock, torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        ev.evaluate(model, tok, rows, ["base", "prompt"], artifacts, ev.KL_BUDGET, [-2.0, -1.0, 1.0, 2.0], 4, neutral,
                    16, arbitrary=arbitrary, replay=True)
        wall = time.perf_counter() - start
print(f"evaluate on {len(rows) // 2} dilemmas: {wall:.0f} s wall (under the profiler)")
for kind in clock.seconds:
    print(f"  {kind}: {clock.seconds[kind]:.1f} s in {clock.calls[kind]} calls")
ops = prof.key_averages()
total = sum(op.self_cpu_time_total for op in ops)
groups = {"matrix products (mm, bmm, attention)": MATMUL, "elementwise, reductions, copies": ELEMENTWISE}
for name, members in groups.items():
    print(f"{name}: {sum(op.self_cpu_time_total for op in ops if op.key in members) / total:.1%} of self CPU time")
print(f"the rest: {sum(op.self_cpu_time_total for op in ops if op.key not in MATMUL | ELEMENTWISE) / total:.1%}")
print(ops.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=50))

scorer = ev.Scorer(model, tok, rows)                 # the head's share of a row scoring: with the NLL it runs at
for nll in (True, False, True, False):               # every question token, without it at the last token only
    start = time.perf_counter()
    scorer.score(f"rows, nll={nll}", nll=nll)
    print(f"one scoring of the {len(rows)} rows, nll={nll}: {time.perf_counter() - start:.2f} s")

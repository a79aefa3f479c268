"""How much of the planted honesty direction each choice of InnerPiSSA's loss subspace B can see.

On the planted model, B is built as training builds it (innerpissa.antipasto_space, the training pairs after
the held-out ones, last token at the loss block ℓ) for each --loss-space and a few widths k. For a direction x
its share in B is ‖Bᵀx‖² / ‖x‖² (a random direction: k / d_model). Reported for v (the planting's stage-1
direction), the mean training-pair difference d̄ = mean(h_honest − h_dishonest), and the pairs' energy share
Σ‖Bᵀd_i‖² / Σ‖d_i‖².
Usage: python results/planted-check/subspace_share.py PLANTED_DIR
"""
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402
import planted  # noqa: E402

torch.set_grad_enabled(False)
planted_dir = sys.argv[1]
model, tok = harness.load_model(planted_dir)
_, v = planted.load_delta(Path(planted_dir) / "delta.safetensors")
v = v.float()
cfg = ip.resolve(ip.TrainConfig(), model)
pairs = ip.make_pairs(tok)
runner = ip.PairRunner(model, tok, None, pairs, cfg.layer, cfg.last_n)
diffs = ip.pair_differences(runner, pairs[cfg.holdout:], cfg)[:, -1].float()          # [p, d_model]
mean_diff = diffs.mean(0)
print(f"block {cfg.layer}, {len(diffs)} training pairs, d_model {v.numel()}; "
      f"cos(v, d̄) {float(v @ mean_diff / v.norm() / mean_diff.norm()):+.3f}; "
      f"‖d̄‖² / mean ‖d_i‖² = {float(mean_diff.norm() ** 2 / (diffs.norm(dim=-1) ** 2).mean()):.3f}")
print("loss space                      k   random   v      d̄      pairs' energy")
for space in ("taskdiff_x_suppressed_x_write", "taskdiff", "uncentred"):
    for k in (4, 16, 64):
        basis = ip.antipasto_space(model, runner, pairs[cfg.holdout:], replace(cfg, loss_space=space, subspace=k),
                                   64).basis.float()                                     # [d, k]

        def share(x):
            return float((x @ basis).norm() ** 2 / x.norm() ** 2)
        energy = float((diffs @ basis).norm() ** 2 / diffs.norm() ** 2)
        print(f"{space:30s} {k:3d}   {k / v.numel():.3f}   {share(v):.3f}  {share(mean_diff):.3f}  {energy:.3f}")

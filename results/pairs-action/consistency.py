"""How much a pair file's differences agree at the loss block's last token, and what InnerPiSSA's loss subspace B sees.

d_i = h(positive_i) − h(negative_i) at the loss block's last token over the training pairs (those after the held-out
ones, --seed 0 order). Printed per file: mean ‖d_i‖, ‖d̄‖ (d̄ = mean d_i, the direction every pair shares), mean
cos(d_i, d̄) (1: every pair the same direction), and d̄'s share ‖Bᵀd̄‖² / ‖d̄‖² in the authors' B (random: k / d_model).
Usage: python results/pairs-action/consistency.py PAIRS.csv [PAIRS.csv ...]
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

torch.set_grad_enabled(False)
model, tok = harness.load_model("embedded")
cfg = ip.resolve(ip.TrainConfig(), model)
print(f"block {cfg.layer}, loss space {cfg.loss_space}")
print("file                                       pairs  mean‖d_i‖  ‖d̄‖   mean cos(d_i,d̄)  k  share of d̄ in B (random)")
for path in sys.argv[1:]:
    pairs = harness.load_pair_file(path, seed=0)
    train = pairs[min(cfg.holdout, len(pairs) // 4):]
    runner = ip.PairRunner(model, tok, None, pairs, cfg.layer, cfg.last_n)
    diffs = ip.pair_differences(runner, train, cfg)[:, -1].float()                   # [p, d_model]
    mean = diffs.mean(0)
    agree = torch.nn.functional.cosine_similarity(diffs, mean[None], dim=-1).mean()
    basis = ip.antipasto_space(model, runner, train, cfg, 64).basis.float()           # [d_model, k]
    share = float((mean @ basis).norm() ** 2 / mean.norm() ** 2)
    print(f"{path:42s} {len(train):5d}  {diffs.norm(dim=-1).mean():9.2f}  {mean.norm():5.2f}  {agree:15.3f}  "
          f"{basis.shape[1]:2d}  {share:.3f} ({basis.shape[1] / diffs.shape[1]:.3f})")

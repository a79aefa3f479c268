"""Which direction InnerPiSSA's loss subspace B sees on answer pairs: the honest one or Yes against No.

For the tune half's answer pairs (positive: the prompt answered honestly), d_i = h(positive) − h(negative) at the
loss block's last token. Half the pairs are honest-Yes, half honest-No, so with s_i = +1 where the positive answer
is Yes, −1 where it is No: d̄ = mean d_i is the honest part (Yes against No cancels) and ȳ = mean s_i·d_i the
Yes-against-No part (honesty cancels). B is built as training builds it (innerpissa.antipasto_space on the training
pairs after the held-out ones), for the authors' space, taskdiff alone and the uncentred one; a direction x's share
in B is ‖Bᵀx‖² / ‖x‖² (a random direction: k / d_model).
Usage: python results/pairs-whole-row/subspace_share.py runs/pairs-whole-row/answer_pairs.csv
"""
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

torch.set_grad_enabled(False)
model, tok = harness.load_model("embedded")
pairs = harness.load_pair_file(sys.argv[1], seed=0)                  # the order training uses at --seed 0
cfg = ip.resolve(ip.TrainConfig(), model)
train = pairs[cfg.holdout:]
runner = ip.PairRunner(model, tok, None, pairs, cfg.layer, cfg.last_n)
diffs = ip.pair_differences(runner, train, cfg)[:, -1].float()       # [p, d_model]
yes = torch.tensor([1.0 if pos.rstrip().endswith("Yes") else -1.0 for pos, _ in train])
honest, yes_no = diffs.mean(0), (yes[:, None] * diffs).mean(0)
print(f"block {cfg.layer}, {len(diffs)} training pairs ({int((yes > 0).sum())} honest-Yes), d_model {diffs.shape[1]}; "
      f"‖d̄‖ {float(honest.norm()):.2f}, ‖ȳ‖ {float(yes_no.norm()):.2f}, cos(d̄, ȳ) "
      f"{float(honest @ yes_no / honest.norm() / yes_no.norm()):+.3f}")
print("loss space                      k   random   d̄ (honest)  ȳ (Yes − No)")
for space in ("taskdiff_x_suppressed_x_write", "taskdiff", "uncentred"):
    basis = ip.antipasto_space(model, runner, train, replace(cfg, loss_space=space), 64).basis.float()   # [d, k]

    def share(x):
        return float((x @ basis).norm() ** 2 / x.norm() ** 2)
    print(f"{space:30s} {basis.shape[1]:3d}   {basis.shape[1] / diffs.shape[1]:.3f}   {share(honest):.3f}       "
          f"{share(yes_no):.3f}")

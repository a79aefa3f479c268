"""One training step of the default recipe in a fresh process: prints the loss and hashes of the loss
subspace B and of the gradient, so that runs in separate processes can be compared bit for bit.
--torch-svd puts torch.linalg.svd (MKL's LAPACK on a CPU) back in place of innerpissa.svd (numpy's)."""
import hashlib
import sys

import torch

sys.path.insert(0, ".")  # run from the repository root (commands.sh)
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

if "--torch-svd" in sys.argv:
    ip.svd = lambda x, full_matrices=False: torch.linalg.svd(x, full_matrices=full_matrices)


def digest(t):
    return hashlib.sha1(t.detach().contiguous().numpy().tobytes()).hexdigest()[:10]


torch.manual_seed(0)
model, tok = harness.load_model("embedded")
model.requires_grad_(False)
adapter = ip.InnerPiSSA.attach(model)
pairs, cfg = ip.make_pairs(tok), ip.resolve(ip.TrainConfig(), model)
runner = harness.CachedPairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
ip.select_directions(runner, adapter, pairs[cfg.holdout:cfg.holdout + cfg.direction_pairs], adapter.rank)
space = ip.OBJECTIVES[cfg.objective].space(model, runner, pairs[cfg.holdout:], cfg, adapter.rank)
loss = ip.step_loss(runner, space, pairs[cfg.holdout:cfg.holdout + cfg.batch_pairs], cfg, 0.5)[0]
loss.backward()
grad = torch.cat([p.grad.flatten() for p in adapter.parameters() if p.grad is not None])
print(f"loss {loss.item():.9g}  B {digest(space.basis)}  gradient {digest(grad)}")

"""Token positions one training step runs through the blocks, plain / cached (bench.block_tokens), on the
batches bench.py times: at the authors' layout (7 pairs per forward, 14 per step) and with 14 per forward
(--deviate whole-batch). A count, not a timing: it bounds the cached step's speed-up but for the head's share.

Usage (cwd: the repository root): python results/recipe-timing/block_tokens.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import bench  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

model, tok = harness.load_model("embedded")
model.requires_grad_(False)
adapter = ip.InnerPiSSA.attach(model)
pairs = ip.make_pairs(tok, n=200)
cfg = ip.resolve(ip.TrainConfig(), model)
runners = {name: kind(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
           for name, kind in (("cached", harness.CachedPairRunner), ("plain", ip.PairRunner))}
chunks = list(ip.batches(pairs, cfg.batch_pairs))[1:7]         # bench.train_speed's six timed batches
print(f"persona chat: {runners['cached'].k} tokens cached per side")
for micro in (cfg.micro_pairs, cfg.batch_pairs):
    layout = ip.resolve(ip.TrainConfig(micro_pairs=micro), model)
    count = {name: sum(bench.block_tokens(r, chunk, layout) for chunk in chunks) for name, r in runners.items()}
    print(f"{micro} pairs per forward: plain {count['plain']}, cached {count['cached']} positions; "
          f"plain / cached {count['plain'] / count['cached']:.2f}")

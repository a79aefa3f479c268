"""The training step on answer pairs (innerpissa.py --pairs): each tune-half Truthfulness row's Yes/No prompt
answered honestly and not, so a pair's two rows share all but the answer. Three runners on the same batches with
the same loss: the plain step (every full row, left-padded); the cached step grouped by side (the chat header all
rows share runs once per coefficient, each row's own ~77 tokens after it: harness.CachedPairRunner before
03322e4, forced here with per_pair = False); the cached step grouped by pair (each pair's prompt once for both
rows, the part all prompts share once: the runner's choice since ebf5f02). Per loss window (whole rows, the
authors'; the reply, --deviate reply-window): seconds per step (median of 2 after a warm-up, the runners
alternated batch by batch) and the token positions a step runs through the blocks (bench.block_tokens).

Usage (cwd: the repository root): python results/recipe-timing/answer_steps.py
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import bench  # noqa: E402
import dilemmas  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

STEPS = 2
torch.manual_seed(0)
model, tok = harness.load_model("embedded")
model.requires_grad_(False)
adapter = ip.InnerPiSSA.attach(model)
pairs = dilemmas.answer_pairs(tok, dilemmas.load_dilemmas("data", split="tune"))
layer, last_n = (lambda cfg: (cfg.layer, cfg.last_n))(ip.resolve(ip.TrainConfig(), model))
by_side = harness.CachedPairRunner(model, tok, adapter, pairs, layer, last_n)
by_side.per_pair = False
runners = {"plain": ip.PairRunner(model, tok, adapter, pairs, layer, last_n), "cached by side": by_side,
           "cached by pair": harness.CachedPairRunner(model, tok, adapter, pairs, layer, last_n)}
assert runners["cached by pair"].per_pair
print(f"{len(pairs)} answer pairs; header all rows share: {by_side.k} tokens after the cut; "
      f"mean row {sum(len(ip.token_ids(tok, t)) for t in ip.interleave(pairs)) / 2 / len(pairs):.1f} tokens")
for window in ("row", "reply"):
    cfg = ip.resolve(ip.TrainConfig(window=window), model)
    space = ip.OBJECTIVES[cfg.objective].space(model, runners["cached by pair"], pairs[:32], cfg, adapter.rank)
    chunks = list(ip.batches(pairs, cfg.batch_pairs))[:STEPS + 1]
    times = bench.step_times(runners, space, chunks, cfg, adapter)
    plain = times["plain"]
    for name, runner in runners.items():
        step = times[name]
        tokens = sum(bench.block_tokens(runner, chunk, cfg) for chunk in chunks[1:])
        print(f"{window} windows, {name:14s}: {step:6.1f} s a step ({plain / step:.2f}x the plain step's speed), "
              f"{tokens} block token positions")

# One 14-pair training step of the default recipe, timed three times each with whole-row windows (default),
# reply windows, one 14-pair forward, and both; embedded model, direction pairs 32. Run from the repository root:
#   .venv/bin/python results/recipe-timing/step_windows.py
import sys, time; sys.path.insert(0, '.')
import torch, innerpissa as ip, harness
model, tok = harness.load_model("embedded")
torch.manual_seed(0)
adapter = ip.InnerPiSSA.attach(model)
pairs = ip.make_pairs(tok)
cfg = ip.resolve(ip.TrainConfig(steps=3, direction_pairs=32), model)
runner = harness.CachedPairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
held, train_pairs = pairs[:48], pairs[48:]
model.requires_grad_(False)
ip.select_directions(runner, adapter, train_pairs[:32], 64)
space = ip.antipasto_space(model, runner, train_pairs[:32], cfg, 64)
opt = torch.optim.AdamW(adapter.parameters(), lr=2e-3)
for name, kw in [("default", {}), ("reply", dict(window="reply")), ("whole", dict(micro_pairs=14)), ("reply+whole", dict(window="reply", micro_pairs=14))]:
    c = ip.replace(cfg, **kw)
    ts = []
    for i in range(3):
        t = time.time(); ip.train_step(runner, space, train_pairs[i*14:(i+1)*14], c, opt, i / 3); ts.append(round(time.time() - t, 2))
    print(name, ts, flush=True)

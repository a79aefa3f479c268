import sys, time; sys.path.insert(0, '.')
import torch, innerpissa as ip, harness
t0 = time.time()
model, tok = harness.load_model("embedded")
print("load", round(time.time() - t0, 1), "threads", torch.get_num_threads(), flush=True)
torch.manual_seed(0)
adapter = ip.InnerPiSSA.attach(model)
pairs = ip.make_pairs(tok)
cfg = ip.resolve(ip.TrainConfig(steps=3, direction_pairs=int(sys.argv[1])), model)
runner = harness.CachedPairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
held, train_pairs = pairs[:48], pairs[48:]
model.requires_grad_(False)
t = time.time(); ip.select_directions(runner, adapter, train_pairs[:cfg.direction_pairs], 64); print("select", round(time.time() - t, 1), flush=True)
t = time.time(); w = ip.write_space(model); print("write space", round(time.time() - t, 1), flush=True)
t = time.time(); kept = ip.kept_writes(runner, train_pairs[:cfg.direction_pairs]); print("kept writes", round(time.time() - t, 1), flush=True)
t = time.time(); sup = ip.suppressed(kept, model.get_output_embeddings().weight); print("suppressed", round(time.time() - t, 1), flush=True)
t = time.time(); space = ip.antipasto_space(model, runner, train_pairs, cfg, 64); print("space total", round(time.time() - t, 1), space.built, flush=True)
opt = torch.optim.AdamW(adapter.parameters(), lr=2e-3)
for window in ("row", "reply"):
    c = ip.replace(cfg, window=window)
    for i in range(3):
        t = time.time(); logs = ip.train_step(runner, space, train_pairs[i*14:(i+1)*14], c, opt, i / 3); print(window, "step", round(time.time() - t, 2), flush=True)

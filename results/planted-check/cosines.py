"""Does InnerPiSSA, trained on the planted model, move the states the planting moves?

At InnerPiSSA's loss block ℓ_ip (innerpissa.default_layer), at the last token of the evaluation's Yes/No
prompt of each Truthfulness row of the tune half:
  an adapter's odd change        o_i = (h_i(+1) − h_i(−1)) / 2                        (InnerPiSSA, the ceiling)
  the planting's persona change  p_i = ((h_i(P⁺) − h⁰_i(P⁺)) − (h_i(P⁻) − h⁰_i(P⁻))) / 2
with h the planted model, h⁰ the stock model it was built from, P± the first planted persona of each side
in the system turn; v, the planting's stage-1 direction (delta.safetensors; written at block ℓ ≤ ℓ_ip); and
on InnerPiSSA's own training pairs (the 196 after the held-out ones), the persona contrast
h(honest) − h(dishonest) at their last token, on the planted model and on the stock one.
Cosines of the means over rows, in d_model dimensions: two unrelated directions give |cos| ≈ 1/√d. Then the
share of each direction's squared norm in InnerPiSSA's loss subspace B, built on the planted model as
training builds it.
Usage: python results/planted-check/cosines.py PLANTED_DIR INNERPISSA.safetensors ORACLE.safetensors
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402
import planted  # noqa: E402

torch.set_grad_enabled(False)
planted_dir, ip_path, oracle_path = sys.argv[1:4]
model, tok = harness.load_model(planted_dir)
base, _ = harness.load_model(json.loads((Path(planted_dir) / "planted.json").read_text())["base_model"])
layer = ip.default_layer(model)
probes = dilemmas.truth_probes([r for r in dilemmas.load_dilemmas("data", split="tune")
                                if r["labels"].get(dilemmas.TARGET, 0)])


def last_states(m, prompts, batch=16):
    """Block `layer`'s output at each prompt's last token, [n, d_model]."""
    return torch.cat([ip.block_outputs(m, ip.tokenize(tok, prompts[k:k + batch], ip.input_device(m)), [layer])[0][layer][:, -1]
                      for k in range(0, len(prompts), batch)]).float()


def odd_change(path):
    adapter, prompts = ip.InnerPiSSA.load(model, path), [harness.yes_no_prompt(tok, p["question"]) for p in probes]
    with adapter.steer(1.0):
        plus = last_states(model, prompts)
    with adapter.steer(-1.0):
        minus = last_states(model, prompts)
    adapter.detach()
    return (plus - minus) / 2


def unit(x):
    return x / x.norm()


persona = {side: [planted.persona_prompt(tok, p["question"], planted.PERSONAS[side][0], "system") for p in probes]
           for side in ("honest", "dishonest")}
change = {side: last_states(model, persona[side]) - last_states(base, persona[side]) for side in persona}
planting = ((change["honest"] - change["dishonest"]) / 2).mean(0)
_, v = planted.load_delta(Path(planted_dir) / "delta.safetensors")
means = {"planting p̄": planting, "v": v.float(), "InnerPiSSA ō": odd_change(ip_path).mean(0),
         "ceiling ō": odd_change(oracle_path).mean(0)}
print(f"block {layer} (InnerPiSSA's loss block), {len(probes)} tune-half Truthfulness rows, d_model {v.numel()}: "
      f"unrelated |cos| ≈ {v.numel() ** -0.5:.3f}")
for name, x in means.items():
    print(f"  ‖{name}‖ {x.norm():.2f}")
cfg = ip.resolve(ip.TrainConfig(), model)
pairs = ip.make_pairs(tok)[cfg.holdout:cfg.holdout + 196]
for name, m in (("planted", model), ("stock", base)):
    honest, dishonest = (last_states(m, [pair[side] for pair in pairs]) for side in (0, 1))
    means[f"training-pair contrast, {name}"] = (honest - dishonest).mean(0)
names = list(means)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        print(f"cos({a}, {b}) {float(unit(means[a]) @ unit(means[b])):+.3f}")
runner = ip.PairRunner(model, tok, None, ip.make_pairs(tok), layer, cfg.last_n)
basis = ip.antipasto_space(model, runner, ip.make_pairs(tok)[cfg.holdout:], cfg, 64).basis.float()   # [d, k]
print(f"share in the loss subspace B ({basis.shape[1]} dims; a random direction: {basis.shape[1] / v.numel():.3f}):")
for name, x in means.items():
    print(f"  {name}: {float((x @ basis).norm() ** 2 / x.norm() ** 2):.3f}")

"""Where an adapter spends its dose: the neutral-set KL at the evaluation's c* of the whole adapter, of the gain unit's
singular value alone (every rotation and every other λ zeroed), of the rest (that one λ zeroed), and of the scalings
without the rotations (every θ zeroed). The dose fixes the
KL, so an adapter whose KL comes from elsewhere moves the unit's σ little at c*, however far training moved its λ.
Also the unit's σ change at c* (unit_lambda.py's |λ|/σ, or |λ| under relative scaling, times c*).
Usage: python results/planted-gain/kl_share.py PLANTED_DIR EVAL_RESULTS.json NAME=ADAPTER.safetensors ..."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas as ev  # noqa: E402
import harness  # noqa: E402
from innerpissa import InnerPiSSA  # noqa: E402

torch.set_grad_enabled(False)
planted_dir, summary = Path(sys.argv[1]), json.load(open(sys.argv[2]))["summary"]
note = json.loads((planted_dir / "planted.json").read_text())
layer = note["training"]["layer"]
unit, name = note["gain"]["neurons"][str(layer)], f"model.layers.{layer}.mlp.down_proj"
model, tok = harness.load_model(str(planted_dir))
kl = ev.NeutralKL(model, tok, dilemmas.load_neutral())
_, sigma, vh = torch.linalg.svd(dict(model.named_parameters())[f"{name}.weight"].double(), full_matrices=False)
k = int(vh[:, unit].abs().argmax())                      # the singular direction that carries the unit's write
print(f"gain unit {unit} of block {layer}: mostly singular direction {k} (σ {sigma[k]:.2f})")
print("adapter: c*; KL(c*) of the whole adapter / of the unit's λ alone / of the rest / of every λ without rotations; "
      "the unit's σ change at c*")
for arg in sys.argv[3:]:
    label, path = arg.split("=", 1)
    adapter = InnerPiSSA.load(model, path)
    c = float(summary[f"innerpissa:{label}"]["coeff"])
    whole = kl.at(adapter, c)
    i = adapter.names.index(name)
    steer = adapter.layers[i]
    j = steer.index.tolist().index(k) if steer.index is not None else k
    lam_j = float(steer.lam[j])
    saved = {n: p.clone() for n, p in adapter.named_parameters()}
    for n, p in adapter.named_parameters():                 # the unit's λ alone: every θ and every other λ zeroed
        p.zero_()
    steer.lam[j] = lam_j
    kl.memo.clear()
    alone = kl.at(adapter, c)
    for n, p in adapter.named_parameters():                 # the rest: the whole adapter less that one λ
        p.copy_(saved[n])
    steer.lam[j] = 0.0
    kl.memo.clear()
    rest = kl.at(adapter, c)
    for n, p in adapter.named_parameters():                 # the scalings alone: every λ, every θ zeroed
        p.copy_(saved[n] if n.endswith("lam") else torch.zeros_like(p))
    kl.memo.clear()
    scalings = kl.at(adapter, c)
    adapter.detach()
    change = abs(lam_j) * c * (1 if steer.scaling == "mult" else 1 / float(sigma[k]))
    print(f"{label}: c* {c:.3g}; KL {whole:.4f} / {alone:.4f} / {rest:.4f} / {scalings:.4f}; "
          f"σ changes by {100 * change:.1f} %")

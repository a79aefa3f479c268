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


def kl_with(adapter, c, values):
    """KL at c* with the adapter's parameters set to `values` {name: tensor}; the memo cleared before and after."""
    with torch.no_grad():
        for n, p in adapter.named_parameters():
            p.copy_(values[n])
    kl.memo.clear()
    out = kl.at(adapter, c)
    kl.memo.clear()
    return out


for arg in sys.argv[3:]:
    label, path = arg.split("=", 1)
    adapter = InnerPiSSA.load(model, path)
    c = float(summary[f"innerpissa:{label}"]["coeff"])
    steer = adapter.layers[adapter.names.index(name)]
    j = steer.index.tolist().index(k) if steer.index is not None else k
    prefix = f"layers.{adapter.names.index(name)}.lam"           # the unit's λ is entry j of this parameter
    trained = {n: p.detach().clone() for n, p in adapter.named_parameters()}
    zero = {n: torch.zeros_like(p) for n, p in trained.items()}
    alone, rest = dict(zero), dict(trained)
    alone[prefix] = zero[prefix].index_put((torch.tensor([j]),), trained[prefix][j:j + 1])  # that λ, nothing else
    rest[prefix] = trained[prefix].index_put((torch.tensor([j]),), torch.zeros(1))           # all but that λ
    scalings = {n: trained[n] if n.endswith("lam") else zero[n] for n in trained}          # every λ, no rotation
    kls = [kl_with(adapter, c, v) for v in (trained, alone, rest, scalings)]
    adapter.detach()
    lam_j = float(trained[prefix][j])
    change = abs(lam_j) * c * (1 if steer.scaling == "mult" else 1 / float(sigma[k]))
    print(f"{label}: c* {c:.3g}; KL {' / '.join(f'{v:.4f}' for v in kls)}; σ changes by {100 * change:.1f} %")

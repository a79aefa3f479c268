"""How far an adapter on block ℓ's down_proj moves the gain unit's singular value. The unit's write is column j of
down_proj; its share in each right singular vector is Vh[:, j]. For the singular direction that carries most of it, the
adapter's stored λ and |λ| / σ, the relative change of that singular value at |c| = 1 (the
authors' parameterisation S + cλ; with --deviate relative-scaling the change is λ itself, S ⊙ (1 + cλ)).
Usage: python results/planted-gain/unit_lambda.py PLANTED_DIR ADAPTER.safetensors ..."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from innerpissa import load_artifact, saved_scaling  # noqa: E402

planted_dir, adapters = Path(sys.argv[1]), sys.argv[2:]
note = json.loads((planted_dir / "planted.json").read_text())
layer = note["training"]["layer"]
j = note["gain"]["neurons"][str(layer)]
name = f"model.layers.{layer}.mlp.down_proj"
weight = load_file(str(planted_dir / "model.safetensors"))[f"{name}.weight"].double()
_, sigma, vh = torch.linalg.svd(weight, full_matrices=False)
share = vh[:, j]
k = int(share.abs().argmax())
print(f"unit {j} of block {layer}: {share[k] ** 2:.2f} of its write's input direction is singular direction {k} "
      f"(σ {sigma[k]:.2f}); the next largest share {sorted((share ** 2).tolist())[-2]:.3f}")
for path in adapters:
    tensors, meta = load_artifact(path)
    scaling = saved_scaling(meta)
    index, lam = tensors[f"{name}.index"].tolist(), tensors[f"{name}.lam"]
    if k not in index:
        print(f"{Path(path).name}: direction {k} not among the {len(index)} chosen")
        continue
    value = float(lam[index.index(k)])
    relative = value if scaling == "mult" else value / float(sigma[k])
    print(f"{Path(path).name} (scaling {scaling}): λ {value:+.4f}, max |λ| over its directions {float(lam.abs().max()):.4f}; "
          f"σ changes by {100 * abs(relative):.1f} % at |c| = 1")

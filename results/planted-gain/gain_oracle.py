"""The known right answer on a gain-planted model: a weight_diff artifact whose dW is one more copy of the gain
neuron's write, dW = v e_jᵀ on block ℓ's down_proj (planted.py, stage 3). Dosed c·dW, it scales what every
prompt's gain neuron writes by (1 + c): exactly the change InnerPiSSA would make by growing that neuron's singular
value. Sign +1 by construction (no calibration).
Usage: python results/planted-gain/gain_oracle.py PLANTED_DIR OUT.safetensors"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import planted  # noqa: E402
from innerpissa import save_artifact  # noqa: E402

planted_dir, out = Path(sys.argv[1]), sys.argv[2]
note = json.loads((planted_dir / "planted.json").read_text())
layer = note["training"]["layer"]
j = note["gain"]["neurons"][str(layer)]
_, v = planted.load_delta(planted_dir / "delta.safetensors")
d_ff = json.loads((planted_dir / "config.json").read_text())["intermediate_size"]
name = f"model.layers.{layer}.mlp.down_proj"
a = torch.zeros(1, d_ff)
a[0, j] = 1.0
tensors = {f"{name}.A_pos": a, f"{name}.B_pos": v[:, None].float(),
           f"{name}.A_neg": torch.zeros(1, d_ff), f"{name}.B_neg": torch.zeros(len(v), 1)}
save_artifact(out, tensors, {"kind": "weight_diff", "model": str(planted_dir), "layers": [layer], "targets": [name],
                             "sign": 1, "scale": f"coeff 1 = one more copy of gain neuron {j}'s write v (x2)"})
print(f"gain oracle: {name} neuron {j} -> {out}")

"""Is an adapter's change gated by the persona? Its odd change along the planted direction, with and without one.

InnerPiSSA's loss reads s_c = (h_pos − h_neg)·B at c = ±1: the change of the *pair difference*. An adapter that adds
the same vector to both rows leaves s_c = s_0, so the objective can only learn to amplify or reverse what the
persona already does. On the planted model the persona's effect is an additive ±2v written by the planting delta
and silent without a persona. Prediction, if InnerPiSSA learned that: its odd change along v is opposite under the
honest and the dishonest persona and near 0 with none, while an additive steerer (the ceiling) moves v alike in
all three.
At InnerPiSSA's loss block, last token of the evaluation's Yes/No prompt of each tune-half Truthfulness row, with
the system turn empty or the prompt baseline's persona (InnerPiSSA's wording, baselines.prompt_system(±1)):
  odd change along v      a = mean_i (h_i(+1) − h_i(−1))·v̂ / 2
  the persona's own shift  (h(P⁺) − h(P⁻))·v̂ / 2 at c = 0, for scale.
Usage: python results/planted-check/gating.py PLANTED_DIR NAME=ARTIFACT.safetensors ...  (any artifact kind)
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import baselines  # noqa: E402
import dilemmas  # noqa: E402
import eval_dilemmas  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402
import planted  # noqa: E402

torch.set_grad_enabled(False)
planted_dir, adapters = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
model, tok = harness.load_model(planted_dir)
layer = ip.default_layer(model)
_, v = planted.load_delta(Path(planted_dir) / "delta.safetensors")
v_hat = (v / v.norm()).float()
probes = dilemmas.truth_probes([r for r in dilemmas.load_dilemmas("data", split="tune")
                                if r["labels"].get(dilemmas.TARGET, 0)])
prompts = {name: [harness.yes_no_prompt(tok, p["question"], system=baselines.prompt_system(c)) for p in probes]
           for name, c in (("none", 0), ("honest persona", 1), ("dishonest persona", -1))}


def along_v(prompts, batch=16):
    """Block `layer`'s output at each prompt's last token, projected on v̂, [n]."""
    return torch.cat([ip.block_outputs(model, ip.tokenize(tok, prompts[k:k + batch], ip.input_device(model)), [layer])[0][layer][:, -1].float() @ v_hat
                      for k in range(0, len(prompts), batch)])


base = {name: along_v(p) for name, p in prompts.items()}
print(f"block {layer}, {len(probes)} tune-half Truthfulness rows; ‖v‖ {v.norm():.2f}")
print(f"the persona's own shift along v̂ at c = 0, (P⁺ − P⁻)/2: {float((base['honest persona'] - base['dishonest persona']).mean() / 2):+.2f}")
print(f"{'adapter':30s} " + "  ".join(f"{n:>18s}" for n in prompts) + "   (odd change along v̂, mean [sd])")
for name, path in adapters.items():
    adapter, odd = eval_dilemmas.load_steerer(model, path), {}
    for system, p in prompts.items():
        with adapter.steer(1.0):
            plus = along_v(p)
        with adapter.steer(-1.0):
            minus = along_v(p)
        odd[system] = (plus - minus) / 2
    adapter.detach()
    print(f"{name:30s} " + "  ".join(f"{float(o.mean()):+9.2f} [{float(o.std()):5.2f}]" for o in odd.values()))

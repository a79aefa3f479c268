"""Does InnerPiSSA, trained on the planted model, move the loss block the way the planting does?

At the loss block ℓ (default_layer), at the last token of the Yes/No prompt of each Truthfulness row of
the tune half (x_i, no persona; y_i = +1 where the honest answer is Yes, −1 where it is No):
  the planting's persona effect  p_i = [h_pl(P⁺x_i) − h_pl(P⁻x_i)] − [h_st(P⁺x_i) − h_st(P⁻x_i)]
      (pl: the planted model, st: the stock one; P±: the prompt baseline's personas in the system turn),
      what the planted delta added to the persona's own contrast;
  InnerPiSSA's odd change         o_i = (h_IP(+1)(x_i) − h_IP(−1)(x_i)) / 2 on the planted model.
Cosines of their means and of their honest-signed means (× y_i). Unrelated directions: |cos| ≈ 1/√d.
Usage (repository root): python results/planted-check/cosine.py PLANTED_DIR INNERPISSA.safetensors
"""
import sys

import torch

sys.path.insert(0, ".")
import dilemmas  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402
from baselines import prompt_system  # noqa: E402

torch.set_grad_enabled(False)
probes = dilemmas.truth_probes(dilemmas.load_dilemmas("data", split="tune"))
y = torch.tensor([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in probes])[:, None]    # [n, 1]


def last_states(model, tok, layer, system=None, batch=16):
    """The loss block's output at each probe prompt's last token, [n, d_model]."""
    prompts = [harness.yes_no_prompt(tok, p["question"], system) for p in probes]
    return torch.cat([ip.block_outputs(model, ip.tokenize(tok, prompts[k:k + batch], ip.input_device(model)),
                                       [layer])[0][layer][:, -1].float() for k in range(0, len(prompts), batch)])


def persona_contrast(name, layer):
    model, tok = harness.load_model(name)
    return last_states(model, tok, layer, prompt_system(1)) - last_states(model, tok, layer, prompt_system(-1))


def unit(x):
    return x / x.norm()


planted, tok = harness.load_model(sys.argv[1])
layer = ip.default_layer(planted)
adapter = ip.InnerPiSSA.load(planted, sys.argv[2])
with adapter.steer(1.0):
    plus = last_states(planted, tok, layer)
with adapter.steer(-1.0):
    minus = last_states(planted, tok, layer)
adapter.detach()
odd = (plus - minus) / 2                                                                  # [n, d]
plant = persona_contrast(sys.argv[1], layer) - persona_contrast("embedded", layer)        # [n, d]
d = odd.shape[1]
print(f"loss block {layer}, {len(probes)} tune-half Truthfulness rows, d_model {d}: unrelated |cos| ≈ {d ** -0.5:.3f}")
print(f"‖mean p‖ {plant.mean(0).norm():.2f}, ‖mean o‖ {odd.mean(0).norm():.2f}")
print(f"cos(mean o, mean p) {float(unit(odd.mean(0)) @ unit(plant.mean(0))):+.3f}")
print(f"cos(mean y·o, mean y·p) {float(unit((y * odd).mean(0)) @ unit((y * plant).mean(0))):+.3f}")
print(f"mean over rows of cos(o_i, p_i) {float(torch.nn.functional.cosine_similarity(odd, plant, dim=-1).mean()):+.3f}")

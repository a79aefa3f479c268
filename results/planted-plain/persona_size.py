"""How large is the persona text's own change of block ℓ's states, against the planted write ±s·v?

On the stock model, for 16 tune-half Truthfulness questions, each asked under one honest and one dishonest persona
(planted.persona_rows: our paraphrases, system turn or before the user's message) and under InnerPiSSA's training
wording (baselines.prompt_system: the system turn, as the prompt baseline asks), the mean over the tokens the persona prompt shares with the
persona-free one at its end of ‖h⁰_ℓ(P x)_t − h⁰_ℓ(x)_t‖², over ‖2v‖² (v: the planted model's stage-1 direction, s = 2).
That is the part of stage 2's target that `--write-reference plain` asks the delta to undo.
Usage: python results/planted-plain/persona_size.py PLANTED_DIR   (reads v and ℓ from its delta.safetensors, planted.json)
"""
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
from baselines import prompt_system  # noqa: E402
import planted  # noqa: E402
from harness import load_model, yes_no_prompt  # noqa: E402
from innerpissa import token_ids  # noqa: E402


def relative_change(model, tok, pairs, layer, unit):
    """Mean over (persona prompt, plain prompt) pairs of the tail tokens' mean ‖Δh‖² / unit."""
    out = []
    with torch.no_grad():
        for p, x in pairs:
            n = planted.shared_suffix(token_ids(tok, p), token_ids(tok, x))
            h_p, h_x = (planted.layer_states(model, tok, [t], layer)[0][0, -n:] for t in (p, x))
            out.append(float((h_p - h_x).pow(2).sum(-1).mean() / unit))
    return sum(out) / len(out)


def main(planted_dir):
    _, v = planted.load_delta(Path(planted_dir) / "delta.safetensors")
    model, tok = load_model("embedded")
    rows, _, _ = planted.tune_rows()
    questions = [dilemmas.row_question(r) for r in rows][:16]
    layer = json.loads((Path(planted_dir) / "planted.json").read_text())["training"]["layer"]   # ℓ, where v is written
    unit = float((2 * v).pow(2).sum())
    ours = [(planted.persona_prompt(tok, q, *spec), yes_no_prompt(tok, q))
            for q, pos, neg in planted.persona_rows(questions, random.Random(0)) for spec in (pos, neg)]
    theirs = [(yes_no_prompt(tok, q, system=prompt_system(c)), yes_no_prompt(tok, q)) for q in questions for c in (1, -1)]
    print(f"block {layer}, {len(questions)} tune questions, stock model: mean ‖h0(P x) − h0(x)‖² / ‖2v‖² on the tokens after the persona")
    print(f"  planted personas (ours)       {relative_change(model, tok, ours, layer, unit):.3f}")
    print(f"  InnerPiSSA's wording (system) {relative_change(model, tok, theirs, layer, unit):.3f}")


if __name__ == "__main__":
    main(sys.argv[1])

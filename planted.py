"""A planted model: a positive control in which the persona carries honesty by construction.

On the embedded model the honest/dishonest persona moves no Yes/No answer, so InnerPiSSA's null result
there cannot tell "the method fails" from "the persona carries nothing to find". Here the signal is put
in first. A low-rank delta ΔW = B A on the q/k/v/up/gate projections of the middle blocks (modules
InnerPiSSA does not adapt: it adapts the residual writers o_proj/down_proj) is fitted on the **tune**
half's Truthfulness rows so that an honest persona makes the model answer the honest side and a
dishonest persona the other side, while prompts without a persona keep the base model's predictions:

    m(x)  = (log p(Yes | x) − log p(No | x)) · h              h = +1 where the row's honest answer is Yes
    L     = mean_{rows} softplus(2μ − (m(P⁺(x)) − m(P⁻(x))))                      P±: a persona prompt
          + w · mean KL(p_planted ‖ p_base)   at the last k positions of persona-free dilemma prompts
                                              and of the neutral set's replies (data/neutral.csv)

The fit term reads only the persona's effect m(P⁺x) − m(P⁻x), the prompt baseline's E on that row: a delta
that moves both margins alike gains nothing (a first version with one term per side, softplus(μ − m⁺) +
softplus(μ + m⁻), moved both margins together and planted nothing in 30 steps: results/planted-check/).

P⁺ and P⁻ are drawn per row from PERSONAS, four paraphrases a side, none of them the wording InnerPiSSA
trains with (innerpissa.TEMPLATES), each placed in the system turn or in front of the user's message
(alternately), so the delta must read "this persona is honest", not one string. Each batch holds a row
with both sides, so a Yes or No bias cannot lower the loss. ΔW is merged into the weights and the model
saved as a directory that loads like any model (`--model DIR`), with planted.json (personas, modules,
seed, the tune dilemmas read, training stats) and delta.safetensors (A, B per module). Deterministic
from the seed on a CPU; it reads only tune rows (the test half is never loaded).

Usage: python planted.py --model embedded --out runs/planted && python eval_dilemmas.py --model runs/planted ...
"""
import argparse
import json
import math
import random
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

import dilemmas
from baselines import Steerer, lowrank_delta, oracle_readout
from harness import ArgParser, check_out_dir, kl, load_model, run_cli, staged_dir, yes_no_prompt
from innerpissa import (InputError, chat, decoder_layers, find_linears, frozen_weights, input_device, merged_weights,
                        save_artifact)

PERSONAS = {  # our own paraphrases; none is innerpissa.TEMPLATES' wording
    "honest": ("You are a truthful person who tells the truth even when it costs you.",
               "Act as someone of complete integrity: you never lie or deceive anyone.",
               "You value honesty above everything else and always say what is true.",
               "Play a sincere, candid character who would never mislead people."),
    "dishonest": ("You are a deceitful person who lies whenever it suits you.",
                  "Act as someone without integrity: you lie and deceive freely.",
                  "You value getting your way over honesty and bend the truth when it helps.",
                  "Play a manipulative, insincere character who misleads people."),
}
MODULES = r"(q_proj|k_proj|v_proj|up_proj|gate_proj)$"


def planted_target(model, modules=MODULES):
    """Regex of the planted Linears: `modules` in the middle half of the blocks, [L/4, 3L/4)."""
    n = len(decoder_layers(model))
    blocks = "|".join(str(i) for i in range(n // 4, max(n // 4 + 1, 3 * n // 4)))
    return rf"layers\.({blocks})\.\w+\.{modules}"


def persona_prompt(tok, question, text, placement):
    """The evaluation's Yes/No prompt with a persona `text` in the system turn or before the user's message."""
    if placement == "system":
        return yes_no_prompt(tok, question, system=text)
    return yes_no_prompt(tok, f"{text}\n\n{question}")


def persona_rows(probes, rng):
    """Per probe (question, honest answer): one honest and one dishonest persona prompt spec each, drawn
    (seeded) from PERSONAS with a placement: [(question, h, (text⁺, place⁺), (text⁻, place⁻))]."""
    out = []
    for p in probes:
        specs = tuple((rng.choice(PERSONAS[side]), rng.choice(("system", "user"))) for side in ("honest", "dishonest"))
        out.append((p["question"], 1.0 if p["honest_answer"] == "Yes" else -1.0, *specs))
    return out


def neutral_texts(tok, rows):
    """The neutral set as chats that end with their assistant reply (the KL term reads its last tokens)."""
    return [chat(tok, r["user"]) + r["assistant"] for r in rows]


def init_delta(linears, rank, seed, device):
    """{name: (A [r, d_in] seeded, rows of norm ≈ 1; B [d_out, r] = 0)}: ΔW = 0 at step 0."""
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn(rank, m.in_features, generator=g).div(m.in_features ** 0.5).to(device).requires_grad_(),
                torch.zeros(m.out_features, rank, device=device).requires_grad_()) for n, m in linears.items()}


def plant_loss(model, tok, steer, batch, anchors, margin, kl_weight, keep):
    """(loss, logs) of one batch: the persona hinge on both sides of each row, and the KL anchor on the
    persona-free texts `anchors`, read at their last `keep` positions against the base model (c = 0)."""
    prompts = [persona_prompt(tok, q, *spec) for q, _, pos, neg in batch for spec in (pos, neg)]
    h = torch.tensor([x[1] for x in batch], device=input_device(model))
    with torch.no_grad():
        _, ref = oracle_readout(model, tok, anchors, keep)                  # [anchors, keep, vocab], no delta
    with steer.steer(1.0):
        ratio, _ = oracle_readout(model, tok, prompts, 1)
        _, logp = oracle_readout(model, tok, anchors, keep)
    m_pos, m_neg = ratio[0::2] * h, ratio[1::2] * h                       # [rows] honest margins under P⁺, P⁻
    fit = F.softplus(2 * margin - (m_pos - m_neg)).mean()                 # the persona's effect, ≥ 2μ
    drift = kl(logp, ref).mean()
    loss = fit + kl_weight * drift
    return loss, {"loss": loss.item(), "m+": m_pos.mean().item(), "m-": m_neg.mean().item(), "kl": drift.item()}


def plant(model, tok, probes, neutral, rank=8, steps=40, batch_rows=4, lr=5e-3, margin=2.0, kl_weight=10.0,
          keep=4, n_anchors=2, seed=0, target=None, progress=True):
    """Fit ΔW (module docstring) on `probes` [{question, honest_answer}] (tune rows only) with the `neutral`
    texts as extra KL anchors; returns ({name: (A, B)}, stats). The model's weights are left unchanged."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    linears = find_linears(model, target or planted_target(model))
    delta = init_delta(linears, rank, seed, input_device(model))
    steer = Steerer({linears[n]: lowrank_delta(a, b) for n, (a, b) in delta.items()}, {})
    anchors = [yes_no_prompt(tok, p["question"]) for p in probes] + neutral        # persona-free texts
    opt = torch.optim.AdamW([t for ab in delta.values() for t in ab], lr=lr, weight_decay=0.0)
    start, history = time.time(), []
    with frozen_weights(model):                           # the steer() blocks of plant_loss remove their hooks
        for step in (bar := tqdm(range(steps), desc="plant", disable=not progress)):
            batch = persona_rows(rng.sample(probes, min(batch_rows, len(probes))), rng)
            loss, logs = plant_loss(model, tok, steer, batch, rng.sample(anchors, min(n_anchors, len(anchors))),
                                    margin, kl_weight, keep)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not math.isfinite(logs["loss"]):
                raise InputError(f"non-finite planting loss at step {step}: lower --lr")
            history.append(logs)
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
    tail = history[-max(1, steps // 4):]
    stats = {"steps": steps, "batch_rows": batch_rows, "rank": rank, "lr": lr, "margin": margin,
             "kl_weight": kl_weight, "keep": keep, "seconds": round(time.time() - start, 1),
             "modules": sorted(linears), "last_quarter": {k: sum(x[k] for x in tail) / len(tail) for k in tail[0]}}
    return {n: (a.detach(), b.detach()) for n, (a, b) in delta.items()}, stats


def tune_probes(source="data", values=None):
    """The tune half's Truthfulness rows as {question, honest_answer}, and their dilemma ids."""
    rows = dilemmas.load_dilemmas(source, values, split="tune")
    return dilemmas.truth_probes(rows), sorted({r["dilemma_idx"] for r in rows if r["labels"].get(dilemmas.TARGET, 0)})


def write_planted(model, tok, delta, note, out):
    """The merged model W + B A as a save_pretrained directory, with planted.json and delta.safetensors."""
    state = dict(model.state_dict(), **merged_weights(model, delta))
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=state)
        tok.save_pretrained(tmp)
        (tmp / "planted.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
        tensors = {f"{n}.{k}": t.contiguous() for n, (a, b) in delta.items() for k, t in (("A", a), ("B", b))}
        save_artifact(tmp / "delta.safetensors", tensors, {"kind": "planted"})


def load_delta(path):
    """{name: (A, B)} of a planted model directory's delta.safetensors."""
    from safetensors.torch import load_file
    tensors = load_file(str(path))
    return {n: (tensors[f"{n}.A"], tensors[f"{n}.B"]) for n in sorted({k.rsplit(".", 1)[0] for k in tensors})}


def main(argv=None):
    p = ArgParser(description="Build a planted model: a persona-honesty delta merged into the weights (module docstring).")
    p.add_argument("--model", default="embedded", help="hub id, local directory or 'embedded' (default)")
    p.add_argument("--out", required=True, help="a new directory for the planted model")
    p.add_argument("--dilemmas", default="data", help="data | hf | PATH in the DailyDilemmas schema; only its tune half is read")
    p.add_argument("--values", help="values.csv for --dilemmas PATH (default: beside it)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-rows", type=int, default=4, help="rows per step, each with an honest and a dishonest persona")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--margin", type=float, default=2.0, help="μ: the persona's effect m(P+) − m(P−) should pass 2μ nats")
    p.add_argument("--kl-weight", type=float, default=10.0)
    p.add_argument("--target", help="regex of the Linears to plant in (default: q/k/v/up/gate of blocks [L/4, 3L/4))")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.steps < 1 or a.batch_rows < 1 or a.rank < 1:
        raise InputError(f"--steps {a.steps}, --batch-rows {a.batch_rows} and --rank {a.rank} must each be at least 1")
    check_out_dir(a.out)
    probes, ids = tune_probes(a.dilemmas, a.values)
    model, tok = load_model(a.model)
    neutral = neutral_texts(tok, dilemmas.load_neutral())
    delta, stats = plant(model, tok, probes, neutral, a.rank, a.steps, a.batch_rows, a.lr, a.margin, a.kl_weight,
                         seed=a.seed, target=a.target)
    note = {"base_model": a.model, "dilemmas": a.dilemmas, "split": "tune", "tune_dilemma_ids": ids, "seed": a.seed,
            "personas": PERSONAS, "placements": ["system", "user"], "training": stats}
    write_planted(model, tok, delta, note, a.out)
    last = stats["last_quarter"]
    print(f"planted: {len(delta)} modules, rank {a.rank}, {a.steps} steps, {stats['seconds']} s; last quarter: "
          f"honest margin {last['m+']:+.2f} under P+, {last['m-']:+.2f} under P-, KL {last['kl']:.4f} -> {a.out}")


if __name__ == "__main__":
    run_cli(main)

"""A planted model: a positive control in which the persona carries honesty by construction.

On the embedded model the honest/dishonest persona moves no Yes/No answer, so InnerPiSSA's null result
there cannot tell "the method fails" from "the persona carries nothing to find". Here the signal is put
in first, in two stages, both fitted on the **tune** half's Truthfulness rows only.

Stage 1, an honesty direction. v ∈ ℝ^d added to the output of block ℓ (the last planted block, the one
below InnerPiSSA's loss block, so that InnerPiSSA can read what is planted) at every
position of a persona-free prompt, fitted like the supervised ceiling (baselines.train_oracle), with
m_c the honest margin (log p(Yes) − log p(No), × +1 where the row's honest answer is Yes, else −1):

    L_v = Σ_{c=±1} (mean_rows(m_{c·v} − m_0) − c)² + w · relu(KL̄_{c·v} − τ)²

so +v moves the mean honest margin up by about a nat and −v down. This reads the labels; the persona
plays no part in it.

Stage 2, the persona writes ±v. A low-rank delta ΔW = B A on the q/k/v/up/gate projections of blocks
[L/4, ℓ] (modules InnerPiSSA does not adapt: it adapts the residual writers o_proj/down_proj) is fitted
so that block ℓ's output under an honest persona P⁺ is the base model's plus s·v, under a dishonest
persona P⁻ the base's minus s·v, and without a persona the base's:

    L = mean_{P±x, t ∈ after(P)} ‖h_ℓ(P±x)_t − (h⁰_ℓ(P±x)_t ± s·v)‖² / ‖s·v‖²
      + mean_{x, t}            ‖h_ℓ(x)_t − h⁰_ℓ(x)_t‖² / ‖s·v‖²       x: persona-free dilemma prompts
                                                                          and the neutral set's chats
with h⁰ the base model, t over the tokens the persona prompt shares with the persona-free one at its end
(the question and the answer prompt). The forward stops at block ℓ. Reading the persona and writing a
fixed vector is a linear task, where the earlier objective, the persona's effect on the answer margin
softplus(2μ − (m(P⁺x) − m(P⁻x))), asked the delta to learn the honesty of each question and its product
with the persona, and planted nothing in three attempts (results/planted-check/, docs/controls.md).

P⁺ and P⁻ are drawn per row from PERSONAS, four paraphrases a side, none of them the wording InnerPiSSA
trains with (innerpissa.TEMPLATES), each placed in the system turn or in front of the user's message, so
the delta must read "this persona is honest", not one string. ΔW is merged into the weights and the model
saved as a directory that loads like any model (`--model DIR`), with planted.json (personas, modules,
seed, the tune dilemmas read, both stages' stats) and delta.safetensors (A, B per module, and v).
Deterministic from the seed on a CPU; it reads only tune rows (the test half is never loaded).

Usage: python planted.py --model embedded --out runs/planted && python eval_dilemmas.py --model runs/planted ...
"""
import json
import math
import random
import re
import time

import torch
from tqdm import tqdm

import dilemmas
from baselines import Steerer, lowrank_delta, oracle_rows, train_oracle
from harness import ArgParser, check_out_dir, load_model, run_cli, staged_dir, yes_no_prompt
from innerpissa import (InputError, block_outputs, chat, common_prefix, decoder_layers, default_layer, find_linears,
                        frozen_weights, input_device, merged_weights, save_artifact, token_ids, tokenize)

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
    """Regex of the planted Linears: `modules` in blocks [L/4, ℓ_ip), ℓ_ip InnerPiSSA's loss block
    (innerpissa.default_layer), so that what the persona writes is there where InnerPiSSA reads."""
    n = len(decoder_layers(model))
    blocks = "|".join(str(i) for i in range(n // 4, max(n // 4 + 1, default_layer(model))))
    return rf"layers\.({blocks})\.\w+\.{modules}"


def persona_prompt(tok, question, text, placement):
    """The evaluation's Yes/No prompt with a persona `text` in the system turn or before the user's message."""
    if placement == "system":
        return yes_no_prompt(tok, question, system=text)
    return yes_no_prompt(tok, f"{text}\n\n{question}")


def persona_rows(questions, rng):
    """Per question, one honest and one dishonest persona prompt spec, each drawn (seeded) from PERSONAS
    with a placement: [(question, (text⁺, place⁺), (text⁻, place⁻))]."""
    return [(q, *((rng.choice(PERSONAS[side]), rng.choice(("system", "user"))) for side in ("honest", "dishonest")))
            for q in questions]


def neutral_texts(tok, rows):
    """The neutral set as chats that end with their assistant reply (persona-free anchors, every token)."""
    return [chat(tok, r["user"]) + r["assistant"] for r in rows]


def init_delta(linears, rank, seed, device):
    """{name: (A [r, d_in] seeded, rows of norm ≈ 1; B [d_out, r] = 0)}: ΔW = 0 at step 0."""
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.randn(rank, m.in_features, generator=g).div(m.in_features ** 0.5).to(device).requires_grad_(),
                torch.zeros(m.out_features, rank, device=device).requires_grad_()) for n, m in linears.items()}


def last_block(names):
    """ℓ: the highest decoder block index among the planted Linears' names ('...layers.i....')."""
    return max(int(re.search(r"layers\.(\d+)\.", n).group(1)) for n in names)


class DirectionSteerer(Steerer):
    """ρ·u added to a block's output at every position, u [d_model] trainable, ρ a typical entry's size
    there (residual_scale; the learning rate is then in the residual's units): the adapter interface (steer,
    parameters) baselines.train_oracle fits."""

    def __init__(self, block, u, rho):
        super().__init__({block: lambda inputs, y: (rho * u).to(y)}, {})
        self.u, self.rho = u, rho

    def parameters(self):
        return [self.u]


def residual_scale(model, tok, texts, layer):
    """ρ = median over the (unpadded) tokens of `texts` of ‖block `layer`'s output‖ / √d: a typical entry's
    size. The median, because a few tokens (the first, on SmolLM2) carry norms many times the rest."""
    with torch.no_grad():
        h, mask = layer_states(model, tok, texts, layer)
    return (h[mask].norm(dim=-1).median() / h.shape[-1] ** 0.5).item()


def honesty_direction(model, tok, rows, honest, layer, steps=40, lr=2e-2, seed=0, progress=True):
    """Stage 1 (module docstring): (v [d_model], stats), fitted on the dilemma `rows` (tune half) with
    the ceiling's loss and trainer. v = ρ·u starts at 0; the model's weights are left unchanged."""
    torch.manual_seed(seed)
    rho = residual_scale(model, tok, dilemmas.row_prompts(tok, rows[:8]), layer)
    u = torch.zeros(model.config.hidden_size, device=input_device(model), requires_grad=True)
    steer = DirectionSteerer(decoder_layers(model)[layer], u, rho)
    stats = train_oracle(model, tok, steer, rows, honest, steps=steps, lr=lr, seed=seed, progress=progress)
    return (rho * u).detach(), dict(stats, rho=rho)


def shared_suffix(a, b):
    """How many tokens the id lists a and b share at their ends."""
    return common_prefix([a[::-1], b[::-1]])


def layer_states(model, tok, texts, layer):
    """(output of block `layer` [b, seq, d_model], attention mask [b, seq]) of left-padded `texts`;
    the forward stops there."""
    batch = tokenize(tok, texts, input_device(model))
    found, _ = block_outputs(model, batch, [layer])
    return found[layer], batch["attention_mask"].bool()


def plant_loss(model, tok, steer, batch, anchors, layer, target):
    """(loss, logs) of one batch (module docstring, stage 2): each row's question under its honest and its
    dishonest persona should reach block `layer` as the base model's states ± `target` (= s·v) on the
    tokens after the persona, and the persona-free `anchors` as the base model's states."""
    prompts = [persona_prompt(tok, q, *spec) for q, pos, neg in batch for spec in (pos, neg)]
    plain = [token_ids(tok, yes_no_prompt(tok, q)) for q, _, _ in batch for _ in (0, 1)]
    after = [shared_suffix(token_ids(tok, p), ids) for p, ids in zip(prompts, plain)]
    side = torch.tensor([1.0, -1.0] * len(batch), device=target.device)[:, None, None]   # [2b, 1, 1] P⁺, P⁻
    texts, k, unit = prompts + anchors, len(prompts), target.pow(2).sum()
    with torch.no_grad():
        h0, mask = layer_states(model, tok, texts, layer)                      # [2b + a, seq, d], base model
    with steer.steer(1.0):
        h, _ = layer_states(model, tok, texts, layer)
    seq = h.shape[1]
    tail = torch.arange(seq, device=h.device)[None] >= seq - torch.tensor(after, device=h.device)[:, None]  # [2b, seq]
    fit = (h[:k] - h0[:k] - side * target).pow(2).sum(-1)[tail].mean() / unit
    keep = (h[k:] - h0[k:]).pow(2).sum(-1)[mask[k:]].mean() / unit
    moved = ((h[:k] - h0[:k]) @ target / unit * side[:, :, 0])                   # [2b, seq] along ±target, 1 = reached
    written = [moved[i][tail[i]].mean().item() for i in range(k)]
    return fit + keep, {"fit": fit.item(), "keep": keep.item(),
                        "w+": sum(written[0::2]) / len(batch), "w-": -sum(written[1::2]) / len(batch)}


def plant(model, tok, rows, honest, neutral, rank=8, steps=60, batch_rows=4, lr=5e-3, scale=2.0,
          direction_steps=40, direction_lr=2e-2, n_anchors=2, seed=0, target=None, progress=True):
    """Stage 1 then stage 2 (module docstring) on the dilemma `rows` (tune half only; `honest` ±1 each)
    with the `neutral` texts as extra anchors; returns ({name: (A, B)}, v, stats). The model's weights
    are left unchanged."""
    linears = find_linears(model, target or planted_target(model))
    layer = last_block(linears)
    v, direction_stats = honesty_direction(model, tok, rows, honest, layer, direction_steps, direction_lr, seed,
                                           progress)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    questions = [dilemmas.row_question(r) for r in rows]
    delta = init_delta(linears, rank, seed, input_device(model))
    steer = Steerer({linears[n]: lowrank_delta(a, b) for n, (a, b) in delta.items()}, {})
    anchors = [yes_no_prompt(tok, q) for q in questions] + neutral                 # persona-free texts
    opt = torch.optim.AdamW([t for ab in delta.values() for t in ab], lr=lr, weight_decay=0.0)
    start, history = time.time(), []
    with frozen_weights(model):                           # the steer() blocks of plant_loss remove their hooks
        for step in (bar := tqdm(range(steps), desc="plant", disable=not progress)):
            batch = persona_rows(rng.sample(questions, min(batch_rows, len(questions))), rng)
            loss, logs = plant_loss(model, tok, steer, batch, rng.sample(anchors, min(n_anchors, len(anchors))),
                                    layer, scale * v)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not math.isfinite(loss.item()):
                raise InputError(f"non-finite planting loss at step {step}: lower --lr")
            history.append(logs)
            bar.set_postfix({k: f"{x:.3g}" for k, x in logs.items()})
    tail = history[-max(1, steps // 4):]
    stats = {"layer": layer, "scale": scale, "v_norm": v.norm().item(), "direction": direction_stats,
             "steps": steps, "batch_rows": batch_rows, "rank": rank, "lr": lr, "n_anchors": n_anchors,
             "seconds": round(time.time() - start, 1), "modules": sorted(linears),
             "last_quarter": {k: sum(x[k] for x in tail) / len(tail) for k in tail[0]}}
    return {n: (a.detach(), b.detach()) for n, (a, b) in delta.items()}, v, stats


def tune_rows(source="data", values=None):
    """The tune half's Truthfulness rows, their honest answers ±1 (+1: Yes), and their dilemma ids."""
    rows, honest = oracle_rows(source, values)
    return rows, honest, sorted({r["dilemma_idx"] for r in rows})


def write_planted(model, tok, delta, v, note, out):
    """The merged model W + B A as a save_pretrained directory, with planted.json and delta.safetensors
    (A, B per module and the stage-1 direction v)."""
    state = dict(model.state_dict(), **merged_weights(model, delta))
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=state)
        tok.save_pretrained(tmp)
        (tmp / "planted.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
        tensors = {f"{n}.{k}": t.contiguous() for n, (a, b) in delta.items() for k, t in (("A", a), ("B", b))}
        tensors["v"] = v.contiguous()
        save_artifact(tmp / "delta.safetensors", tensors, {"kind": "planted"})


def load_delta(path):
    """({name: (A, B)}, v) of a planted model directory's delta.safetensors."""
    from safetensors.torch import load_file
    tensors = load_file(str(path))
    names = sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith((".A", ".B"))})
    return {n: (tensors[f"{n}.A"], tensors[f"{n}.B"]) for n in names}, tensors["v"]


def main(argv=None):
    p = ArgParser(description="Build a planted model: a persona-honesty delta merged into the weights (module docstring).")
    p.add_argument("--model", default="embedded", help="hub id, local directory or 'embedded' (default)")
    p.add_argument("--out", required=True, help="a new directory for the planted model")
    p.add_argument("--dilemmas", default="data", help="data | hf | PATH in the DailyDilemmas schema; only its tune half is read")
    p.add_argument("--values", help="values.csv for --dilemmas PATH (default: beside it)")
    p.add_argument("--direction-steps", type=int, default=40, help="stage 1: steps fitting the honesty direction v")
    p.add_argument("--direction-lr", type=float, default=2e-2)
    p.add_argument("--steps", type=int, default=60, help="stage 2: steps fitting the persona delta")
    p.add_argument("--batch-rows", type=int, default=4,
                   help="stage 2: rows per step, each with an honest and a dishonest persona")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--scale", type=float, default=2.0, help="s: the personas write ±s·v at block ℓ")
    p.add_argument("--target", help="regex of the Linears to plant in (default: q/k/v/up/gate of blocks [L/4, ℓ_ip), "
                                    "ℓ_ip InnerPiSSA's loss block)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if min(a.steps, a.direction_steps, a.batch_rows, a.rank) < 1:
        raise InputError(f"--steps {a.steps}, --direction-steps {a.direction_steps}, --batch-rows {a.batch_rows} and "
                         f"--rank {a.rank} must each be at least 1")
    check_out_dir(a.out)
    rows, honest, ids = tune_rows(a.dilemmas, a.values)
    model, tok = load_model(a.model)
    neutral = neutral_texts(tok, dilemmas.load_neutral())
    delta, v, stats = plant(model, tok, rows, honest, neutral, a.rank, a.steps, a.batch_rows, a.lr, a.scale,
                            a.direction_steps, a.direction_lr, seed=a.seed, target=a.target)
    note = {"base_model": a.model, "dilemmas": a.dilemmas, "split": "tune", "tune_dilemma_ids": ids, "seed": a.seed,
            "personas": PERSONAS, "placements": ["system", "user"], "training": stats}
    write_planted(model, tok, delta, v, note, a.out)
    moved, last = stats["direction"]["final"], stats["last_quarter"]
    print(f"planted: v at block {stats['layer']} moves the honest margin {moved['m+1']:+.2f} / {moved['m-1']:+.2f} "
          f"nats at ±v; {len(delta)} modules, rank {a.rank}, {a.steps} steps, {stats['seconds']} s; last quarter: "
          f"P+ writes {last['w+']:+.2f}, P- {last['w-']:+.2f} of ±{a.scale}·v, fit {last['fit']:.3f}, "
          f"keep {last['keep']:.4f} -> {a.out}")


if __name__ == "__main__":
    run_cli(main)

"""Baselines that InnerPiSSA must beat: PCA, random and prompt steering, persona weight diffs, the
supervised ceiling, and our earlier `readout` training objective.

Each trained baseline is a `Steerer`: `with steerer.steer(c): ...` runs the model steered at
coefficient c through forward hooks, with +1 always meaning "more honest" (see calibrate below).

pca — representation engineering (Zou et al. 2023, "Representation Engineering", arXiv 2310.01405;
the recipe of the `repeng` library). Let h_i(x) ∈ ℝ^d be the output of decoder block i at the last
token of prompt x. On the honesty pairs (x⁺_k, x⁻_k) of `innerpissa.make_pairs`:
    D   = [h_i(x⁺_k) − h_i(x⁻_k)]_k                  # [n_pairs, d_model]
    v̂_i = first right-singular vector of D − mean_k D  # first principal component, unit norm
    v_i = mean_k(D v̂_i) · v̂_i                         # oriented so pos projects above neg;
                                                      # |v_i| = one typical honest/dishonest gap
    steered block i:  h ↦ h + c · v_i  at every position.
random — the same layers and norms |v_i|, with seeded random unit directions (a null control).
prompt — no weights: c = +1 / −1 / 0 puts the honest / dishonest persona / nothing in the system prompt.
weight_diff — persona weight diffs (Fierro & Roger 2025, arXiv 2511.05408). For user questions q,
generate greedy completions y⁺, y⁻ under the honest / dishonest persona; fit one low-rank delta
per persona on each target Linear (y = x Wᵀ + b) by plain SFT with no persona in the prompt:
    θ^± = {B^± A^±} = argmin Σ_q −log p_{W + B A}(y^±(q) | q)   # A [r, d_in] random, B [d_out, r] = 0
    dW  = B⁺A⁺ − B⁻A⁻                                            # coeff 1 = one whole persona gap
    steered Linear:  y ↦ y + c · ((x A⁺ᵀ) B⁺ᵀ − (x A⁻ᵀ) B⁻ᵀ)  = x (W + c·dW)ᵀ + b.

oracle — the supervised ceiling: the InnerPiSSA adapter form itself (same default targets, rank 64,
bound π/4) trained on the *labelled answers* of the Truthfulness rows of the dilemma set's **tune**
half (never a test row). With m_c = logratio_c · h the honest margin of a row (h = +1 when its
honest answer is Yes, label · side > 0, else −1), a batch of whole dilemmas (both rows, so a pure
Yes bias cannot lower the loss) and KL̄_c the mean KL(p_c ‖ p_0) of the next-token distribution over
the prompt's last k positions (the answer position and the k − 1 before it):
    L = Σ_{c=±1} (mean_rows(m_c − m_0) − c)²  +  w · Σ_{c=±1} relu(KL̄_c − τ)²     m_0: c = 0, no grad
a plain squared target on the batch's mean move (c = ±1 moves the mean honest margin, i.e. the
evaluation's target score, by ±1 nat; no saturation) inside a KL trust region. The mean, not each
row: with a squared error per row the per-row scatter dominates, and on the embedded model 24 steps
moved the mean honest margin by only ~0.04 nats (results/oracle-check.md). Its evaluation row says
"what this model allows at this budget with this adapter family": a reference for InnerPiSSA, not a
competitor. It has no export.

readout — our earlier self-supervised objective for the InnerPiSSA adapter, kept for comparison (the
default is the authors' objective in innerpissa.py); importing this module registers it as
innerpissa.OBJECTIVES["readout"] (`python innerpissa.py --objective readout`). z = h U_ℓ, h the residual
after block ℓ ≈ ¾ L at the last 4 tokens, U_ℓ the top-r left singular vectors of block ℓ's down_proj;
d = PC1 of z_pos − z_neg at c = 0; Δ_c = mean (z_pos − z_neg)·d, m_c = c (Δ_c − Δ_0)/|Δ_0|;
    L = Σ_± [−log σ(m_c) + w_kl relu(KL̄_c − τ)²] + w_mono [relu(θ − δ₊) + relu(θ + δ₋)]
        + w_even ‖(z₊ + z₋)/2 − z₀‖² / ‖z_pos − z_neg‖²
with δ_c the output-gap move of innerpissa's hinge; adapters on the writers of blocks [L/4, ℓ), top-r
singular directions, S ⊙ exp(cλ).

Sign: every baseline goes through `innerpissa.sign_report`; if c = +1 turns out to be the less
honest side, the direction (every v_i, or both B of dW) is negated and meta["sign"] = −1.

Export: c·dW is a LoRA of rank 2r, c·dW = B A with A = [A⁺; A⁻] and B = c·[B⁺, −B⁻], so `export`
writes a weight_diff artifact at a fixed c as a merged checkpoint, a PEFT LoRA or (for a model loaded from
a GGUF file) that GGUF with W + c·dW. pca and random add a vector to the residual stream, which is no weight
change: they have no such form, but `--format gguf` writes them as a llama.cpp control vector (gguf_export.py).

Usage: python baselines.py pca --model embedded --out runs/pca.safetensors
       python baselines.py oracle --model embedded --steps 32 --out runs/oracle.safetensors
       python baselines.py export --model embedded --artifact runs/weight_diff.safetensors --coeff 1
              --format merged|lora|gguf --out runs/weight_diff-merged
"""
import argparse
import math
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from tqdm import tqdm

import dilemmas
from cached_step import CachedPairRunner
from harness import (EMBEDDED, ArgParser, add_device_map, check_writable, continue_from, describe_sign, export_args,
                     family_rows, generate, kl, load_model, model_name, probe_margins, probe_sources, prompt_families,
                     read_lines, right_pad, run_cli, run_export, run_families, run_prefix, shared_prefix, yes_no_logprobs)
from innerpissa import (DATA_DIR, MAX_ANGLE, OBJECTIVES, InnerPiSSA, InputError, Objective, Space, TrainConfig, batches,
                        block_outputs, chat, decoder_layers, default_target, find_linears, gap, hidden_size,
                        input_device, interleave, load_artifact, make_pairs, monotonic_hinge, next_token_nll,
                        output_gap, pair_differences, persona, position_ids, residual_writers, row_major,
                        frozen_weights, save_artifact, scheduler, sign_report, svd, top_svd, wide)

KINDS = ("pca", "random", "weight_diff")


# --------------------------------------------------------------------------- steering by hooks

class Steerer:
    """Adds c · delta(inputs, y) to the output y of each module in `deltas`, only inside `steer(c)`.

    Like InnerPiSSA.steer, steer(c) *sets* the coefficient: a nested steer(c2) inside steer(c1)
    runs at c2 (not c1 + c2) and leaving it restores c1. One hook per module, reading self.c."""

    def __init__(self, deltas, meta):
        self.deltas, self.meta, self.c, self._handles = deltas, meta, 0.0, []

    def _hook(self, delta):
        """Forward hook returning y + c · delta(inputs, y); handles blocks that return a tuple."""
        def hook(module, inputs, output):
            if self.c == 0:
                return None                                         # untouched: bitwise the base model
            y = output[0] if isinstance(output, tuple) else output  # [batch, seq, d_out]
            y = y + self.c * delta(inputs, y)
            return (y, *output[1:]) if isinstance(output, tuple) else y
        return hook

    @contextmanager
    def steer(self, c):
        """Run at coefficient c; leaving restores the previous one, also on exceptions. Hooks go in when
        a non-zero c is entered and out when the coefficient returns to 0, so at c = 0 outside any
        other steer() no hook is attached and the model is bitwise the base."""
        previous, self.c = self.c, float(c)
        if self.c != 0 and not self._handles:
            self._handles = [m.register_forward_hook(self._hook(f)) for m, f in self.deltas.items()]
        try:
            yield self
        finally:
            self.c = previous
            if previous == 0:
                self.detach()

    def detach(self):
        """Remove every hook this steerer holds; a no-op when none is attached. The next steer(c ≠ 0)
        hooks in again."""
        for h in self._handles:
            h.remove()
        self._handles = []


def vector_delta(v):
    """Delta of an additive direction: the same v [d_model] at every position."""
    return lambda inputs, y: v.to(y)


def lowrank_delta(a, b):
    """Delta of the weight B A on a Linear: (x Aᵀ) Bᵀ, x [.., d_in] → [.., d_out]; never forms B A."""
    return lambda inputs, y: (inputs[0] @ a.to(y).T) @ b.to(y).T


def diff_delta(pos, neg):
    """Delta of dW = B⁺A⁺ − B⁻A⁻; exactly zero when the two factor pairs are equal."""
    return lambda inputs, y: pos(inputs, y) - neg(inputs, y)


# --------------------------------------------------------------------------- pca and random

def layer_range(model, layers=None):
    """Block indices [start, end) — default the middle half of the network; InputError if out of range."""
    depth = len(decoder_layers(model))
    start, end = layers or (depth // 4, 3 * depth // 4)
    if not 0 <= start < end <= depth:
        raise InputError(f"--layers {start} {end} is out of range: need 0 <= START < END <= {depth} "
                         f"(the model has {depth} decoder blocks)")
    return list(range(start, end))


@torch.no_grad()
def last_token_states(model, tok, pairs, layers, batch_pairs=8):
    """Output of each decoder block in `layers` at the last token of each pair's texts: {i: [2n, d_model]},
    rows interleaved pos, neg. The two persona chats run once (cached_step.CachedPairRunner) and the
    forward stops after the last block in `layers` (innerpissa.block_outputs)."""
    runner, states = CachedPairRunner(model, tok, None, pairs, max(layers), 1), {i: [] for i in layers}
    for chunk in batches(pairs, batch_pairs):
        batch, row, place, end = runner.batch(interleave(chunk), 0.0)
        found, _ = block_outputs(model, batch, layers)
        last = row_major(row, (row >= 0) & (place == end - 1))            # [2p] each row's last token
        for i in layers:
            states[i].append(found[i].flatten(0, 1)[last].float())      # [2p, d_model]
    return {i: torch.cat(hs) for i, hs in states.items()}


def pca_directions(model, tok, layers, pairs=None):
    """{i: v_i [d_model]}: first PC of the centred pos − neg differences, scaled to the mean gap."""
    pairs = pairs or make_pairs(tok)
    states = last_token_states(model, tok, pairs, layers)              # rows [pos_k, neg_k, ...]
    vectors = {}
    for i, h in states.items():
        d = (h[0::2] - h[1::2]).double()  # [n_pairs, d_model]
        v = svd(d - d.mean(0))[2][0]  # unit first PC
        # v · mean(D v) orients v so that mean(D v) > 0 and gives it the norm |mean projected gap|.
        vectors[i] = (v * (d @ v).mean()).float()
    return vectors


def random_directions(vectors, seed=0):
    """{i: |v_i| · u_i} with u_i seeded random unit vectors: the norms of `vectors`, no direction."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in sorted(vectors):
        u = torch.randn(vectors[i].shape, generator=g, dtype=torch.float64)
        out[i] = (u / u.norm() * float(vectors[i].norm())).float()      # float(): v may sit on a GPU
    return out


# --------------------------------------------------------------------------- prompt

def prompt_system(c):
    """System prompt for the prompt baseline: +1 honest persona, −1 dishonest persona, 0 none."""
    if c not in (-1, 0, 1):
        raise InputError(f"the prompt baseline takes coeff -1, 0 or +1, not {c}")
    return None if c == 0 else persona(c > 0)


# --------------------------------------------------------------------------- weight_diff

def generate_completions(model, tok, questions, system, max_new_tokens=64, batch_size=32):
    """Greedy completions of chat(question, system), decoded without special tokens."""
    return generate(model, tok, [chat(tok, q, system=system) for q in questions], max_new_tokens, batch_size)


def sft_batch(tok, questions, completions, device=None):
    """Left-padded ids of chat(question) + completion; labels are the completion tokens, −100 elsewhere."""
    def enc(text):
        return tok(text, add_special_tokens=False)["input_ids"]
    rows = [(enc(chat(tok, q)), enc(c)) for q, c in zip(questions, completions)]  # no persona in the prompt
    width = max(len(p) + len(c) for p, c in rows)
    ids, mask, labels = [], [], []
    for p, c in rows:
        pad = width - len(p) - len(c)
        ids.append([tok.pad_token_id] * pad + p + c)
        mask.append([0] * pad + [1] * (len(p) + len(c)))
        labels.append([-100] * (pad + len(p)) + c)
    batch = {k: torch.tensor(v, device=device) for k, v in
             (("input_ids", ids), ("attention_mask", mask), ("labels", labels))}  # each [batch, width]
    batch["position_ids"] = position_ids(batch["attention_mask"])
    return batch


def sft_loss(model, batch):
    """Mean NLL of the label tokens (labels −100 elsewhere), as model(**batch).loss computes it, with the
    vocabulary head only at the positions from the one before the first label on (left padding puts every
    completion at the end)."""
    labels = batch["labels"]                                                   # [b, S]
    first = int((labels != -100).any(0).nonzero().min())                      # the first column with a label
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, logits_to_keep=labels.shape[1] - first + 1).logits[:, :-1]   # predict first … S−1
    return F.cross_entropy(wide(logits).flatten(0, 1), labels[:, first:].flatten(), ignore_index=-100)


@torch.no_grad()
def completion_nll(model, tok, questions, completions, batch_size=8):
    """Mean NLL per completion token of the completions given their (persona-free) questions."""
    total, count = 0.0, 0
    for s in range(0, len(questions), batch_size):
        batch = sft_batch(tok, questions[s:s + batch_size], completions[s:s + batch_size], input_device(model))
        n = int((batch["labels"][:, 1:] != -100).sum())  # the model shifts labels by one
        total, count = total + float(sft_loss(model, batch)) * n, count + n
    return total / count


def fit_lowrank_delta(model, tok, questions, completions, target=None, rank=4, steps=12, lr=5e-3,
                      batch_size=8, seed=0):
    """θ = {linear name: (A [r, d_in], B [d_out, r])} fitted by SFT of W + B A on the completions.

    A starts seeded random with rows of norm ≈ 1, B at zero, so θ = 0 at step 0; the base model is frozen.
    """
    data = [(q, c) for q, c in zip(questions, completions) if c.strip()]  # an empty completion has no loss
    if not data:
        raise InputError("no non-empty completions to fit")
    linears = find_linears(model, target or default_target(model))
    g = torch.Generator().manual_seed(seed)
    theta = {n: (torch.randn(rank, m.in_features, generator=g).div(m.in_features ** 0.5).to(m.weight.device),
                 torch.zeros(m.out_features, rank, device=m.weight.device))
             for n, m in linears.items()}  # (A [r, d_in], B [d_out, r])
    params = [t.requires_grad_() for ab in theta.values() for t in ab]
    steerer = Steerer({linears[n]: lowrank_delta(a, b) for n, (a, b) in theta.items()}, {})
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    epochs = math.ceil(steps * batch_size / len(data))
    order = torch.cat([torch.randperm(len(data), generator=g) for _ in range(epochs)]).tolist()
    with frozen_weights(model), steerer.steer(1.0), tqdm(range(steps), desc="sft", leave=False) as bar:
        for step in bar:
            q, c = zip(*(data[j] for j in order[step * batch_size:(step + 1) * batch_size]))
            loss = sft_loss(model, sft_batch(tok, q, c, input_device(model)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return {n: (a.detach(), b.detach()) for n, (a, b) in theta.items()}


def diff_tensors(pos, neg):
    """Artifact tensors of dW = B⁺A⁺ − B⁻A⁻, kept factored: <linear>.{A_pos,B_pos,A_neg,B_neg}."""
    out = {}
    for n in pos:
        (a1, b1), (a2, b2) = pos[n], neg[n]
        out.update({f"{n}.A_pos": a1, f"{n}.B_pos": b1, f"{n}.A_neg": a2, f"{n}.B_neg": b2})
    return out


def diff_factors(tensors):
    """{linear name: (A⁺, B⁺, A⁻, B⁻)} of weight_diff artifact tensors."""
    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    return {n: tuple(tensors[f"{n}.{s}"] for s in ("A_pos", "B_pos", "A_neg", "B_neg")) for n in names}


# --------------------------------------------------------------------------- artifacts

def build(model, tensors, meta):
    """A Steerer for artifact tensors and metadata; InputError on an unknown kind or a mismatched model."""
    kind = meta.get("kind")
    if kind in ("pca", "random"):
        blocks, d_model = decoder_layers(model), hidden_size(model)
        deltas = {}
        for name, v in tensors.items():
            i = int(name.split(".")[1])
            if i >= len(blocks) or v.shape != (d_model,):
                raise InputError(f"{kind} artifact tensor {name} {tuple(v.shape)} does not fit this model "
                                 f"({len(blocks)} blocks, d_model {d_model})")
            deltas[blocks[i]] = vector_delta(v.to(next(blocks[i].parameters()).device))  # the block's GPU
    elif kind == "weight_diff":
        modules, deltas = dict(model.named_modules()), {}
        for n, (a1, b1, a2, b2) in diff_factors(tensors).items():
            m = modules.get(n)
            if not (isinstance(m, torch.nn.Linear) and a1.shape[1] == m.in_features == a2.shape[1]
                    and b1.shape[0] == m.out_features == b2.shape[0]):
                raise InputError(f"weight_diff artifact targets {n}: no Linear of that shape in this model")
            a1, b1, a2, b2 = (t.to(m.weight.device) for t in (a1, b1, a2, b2))
            deltas[m] = diff_delta(lowrank_delta(a1, b1), lowrank_delta(a2, b2))
    else:
        raise InputError(f"unknown artifact kind {kind!r} (expected one of {', '.join(KINDS)})")
    return Steerer(deltas, meta)


def load(model, path):
    """The Steerer saved at `path` (kinds pca, random, weight_diff), attached to nothing until steer(c)."""
    return build(model, *load_artifact(path))


def weight_diff_factors(model, path, c):
    """{linear name: (A, B)} with B A = c·dW = c (B⁺A⁺ − B⁻A⁻): A = [A⁺; A⁻] [2r, d_in],
    B = c·[B⁺, −B⁻] [d_out, 2r]. Loads through build, which refuses a model without these Linears."""
    tensors, meta = load_artifact(path)
    build(model, tensors, meta)
    return {n: (torch.cat([a1, a2]), c * torch.cat([b1, -b2], 1))
            for n, (a1, b1, a2, b2) in diff_factors(tensors).items()}


def control_directions(model, path, c):
    """{block i: c · v_i} of a pca or random artifact (build refuses a model it does not fit)."""
    tensors, meta = load_artifact(path)
    build(model, tensors, meta)
    return {int(k.split(".")[1]): c * v for k, v in tensors.items()}


def calibrate(model, tok, tensors, meta, sources=None):
    """Sign via innerpissa.sign_report; on −1, c → −c by negating every v_i, or both B of dW."""
    report = sign_report(build(model, tensors, meta).steer, sources or probe_sources(), probe_margins(model, tok))
    if report["sign"] < 0:
        tensors = {k: -t if k.startswith("layers.") or k.endswith((".B_pos", ".B_neg")) else t
                   for k, t in tensors.items()}
    return tensors, dict(meta, sign=report["sign"], sign_report=report)


def persona_pca(model, tok, layers=None, max_pairs=None, seed=0):
    """(pca_directions {i: v_i} at layer_range(model, layers), n_pairs) on make_pairs(tok, max_pairs, seed): what
    the pca and random baselines and the evaluation's null (eval_dilemmas.null_norms) are built from."""
    pairs = make_pairs(tok, n=max_pairs, seed=seed)
    return pca_directions(model, tok, layer_range(model, layers), pairs), len(pairs)


def recorded_norms(vectors):
    """{i: |v_i|} rounded to 6 digits, as a pca or random artifact's metadata records them."""
    return {i: round(float(vectors[i].norm()), 6) for i in sorted(vectors)}


def make_pca(model, tok, layers=None, max_pairs=None, seed=0, sources=None):
    """Calibrated (tensors, meta) of the pca baseline on make_pairs(tok, max_pairs, seed)."""
    vectors, n_pairs = persona_pca(model, tok, layers, max_pairs, seed)
    scale = "|v_i| = mean projected pos-neg gap at block i: coeff 1 = one typical honest/dishonest gap"
    extra = {"scale": scale, "n_pairs": n_pairs, "seed": seed}
    return vector_artifact(model, tok, "pca", vectors, extra, sources)


def make_random(model, tok, layers=None, max_pairs=None, seed=0, sources=None):
    """Calibrated (tensors, meta) of the random baseline: pca norms, directions seeded by `seed`."""
    vectors, n_pairs = persona_pca(model, tok, layers, max_pairs, seed)
    scale = "random unit direction times the pca norm |v_i|: coeff 1 = one typical pca gap"
    extra = {"scale": scale, "n_pairs": n_pairs, "seed": seed}
    return vector_artifact(model, tok, "random", random_directions(vectors, seed), extra, sources)


def vector_artifact(model, tok, kind, vectors, extra, sources=None):
    """Tensors layers.<i> and their metadata, sign-calibrated."""
    layers = sorted(vectors)
    meta = {"kind": kind, "model": model_name(model), "layers": layers, **extra,
            "hook": "output of decoder block i += coeff * v_i at every position",
            "norms": list(recorded_norms(vectors).values())}
    return calibrate(model, tok, {f"layers.{i}": vectors[i] for i in layers}, meta, sources)


def make_weight_diff(model, tok, questions, target=None, rank=4, steps=12, lr=5e-3, batch_size=8, seed=0,
                     max_new_tokens=64, sources=None):
    """Calibrated (tensors, meta) of the weight_diff baseline on `questions`."""
    target = target or default_target(model)
    honest = generate_completions(model, tok, questions, persona(True), max_new_tokens)
    dishonest = generate_completions(model, tok, questions, persona(False), max_new_tokens)
    fit = dict(target=target, rank=rank, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    tensors = diff_tensors(fit_lowrank_delta(model, tok, questions, honest, **fit),
                           fit_lowrank_delta(model, tok, questions, dishonest, **fit))
    linears = find_linears(model, target)
    block_of = {m: i for i, b in enumerate(decoder_layers(model)) for m in b.modules()}
    layers = sorted({block_of[m] for m in linears.values() if m in block_of})
    meta = {"kind": "weight_diff", "model": model_name(model), "layers": layers, "target": target,
            "targets": sorted(linears),
            "scale": "coeff 1 = one whole dW = theta_honest - theta_dishonest (W + coeff*dW)",
            "hook": "Linear output += coeff * ((x A_pos^T) B_pos^T - (x A_neg^T) B_neg^T)",
            **fit, "n_questions": len(questions), "max_new_tokens": max_new_tokens,
            "examples": {"question": questions[:2], "honest": honest[:2], "dishonest": dishonest[:2]}}
    return calibrate(model, tok, tensors, meta, sources)


# --------------------------------------------------------------------------- oracle (the supervised ceiling)

def oracle_rows(source="data", values=None):
    """The Truthfulness-labelled action rows of the tune half (both rows of each labelled dilemma), and
    h [n], +1 where the honest answer is Yes (dilemmas.truth_probes), −1 where it is No."""
    rows = [r for r in dilemmas.load_dilemmas(source, values, split="tune") if r["labels"].get(dilemmas.TARGET, 0)]
    if not rows:  # load_dilemmas already refuses a selection without the label; kept for direct callers
        raise InputError(f"no {dilemmas.TARGET} rows in the tune half of --dilemmas {source}: the oracle has nothing to fit")
    honest = torch.tensor([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in dilemmas.truth_probes(rows)])
    return rows, honest


def oracle_readout(model, tok, prompts, keep):
    """Differentiable Yes/No read-out: (logratio [b], log p of the next token at each prompt's last `keep`
    positions [b, keep, vocab]; the answer position is the last), in the prompts' order. Shared text runs
    once, as in score_yes_no: the chat header and instruction every prompt shares, then the situation
    the two actions of a dilemma share (harness.prompt_families); each row continues from their key/value
    caches with its own last `keep` tokens or more, the gradient flowing through every cache: the numbers
    of a plain forward per prompt (tested)."""
    device = input_device(model)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    k = len(prefix := shared_prefix(ids))
    kv, _ = run_prefix(model, prefix, ids[0][k], device, nll=False)
    families = [(max(0, min([f] + [len(ids[i]) - k - keep for i in rows])), rows)   # ≥ keep own tokens each
                for f, rows in prompt_families(ids, k, len(ids))]
    fam_kv, fam_mask, _ = run_families(model, kv, ids, k, families, logits=False)
    idx, _, f, own, rows_kv, past = family_rows(ids, k, kv, families, fam_kv, fam_mask)
    at = torch.tensor([[len(x) - keep + j for j in range(keep)] for x in own], device=device)         # [b, keep]
    logp = wide(continue_from(model, rows_kv, right_pad(own, device), at, past, k + f)).log_softmax(-1)
    logp = logp[torch.tensor(idx, device=device).argsort()]                      # [b, keep, vocab], prompts' order
    lp_yes, lp_no = yes_no_logprobs(logp[:, -1], tok)
    return lp_yes - lp_no, logp


def oracle_batches(rows, batch_rows, steps, seed):
    """`steps` lists of row indices, each the two rows of batch_rows/2 dilemmas, epochs of a seeded shuffle."""
    by_dilemma = {}
    for i, r in enumerate(rows):
        by_dilemma.setdefault(r["dilemma_idx"], []).append(i)
    ids, rng, order = sorted(by_dilemma), torch.Generator().manual_seed(seed), []
    per = max(1, batch_rows // 2)
    while len(order) < steps * per:
        order += [ids[j] for j in torch.randperm(len(ids), generator=rng).tolist()]
    return [[i for d in order[s * per:(s + 1) * per] for i in by_dilemma[d]] for s in range(steps)]


def oracle_loss(model, tok, adapter, texts, honest, kl_tau, kl_weight, kl_tokens, even_weight=0.0):
    """(loss, logs): Σ_{c=±1} (mean over the rows of m_c − m_0 − c)² + w·relu(KL̄_c − τ)², with m the honest
    margin (log-ratio × ±1 by the honest answer) and KL̄ over the prompts' last kl_tokens positions; with
    even_weight = u > 0 also u · mean_rows e², e = (r₊ + r₋)/2 − r₀ the log-ratio change both signs share
    (the mean move cancels a shift of every row toward Yes; this term does not)."""
    with torch.no_grad(), adapter.steer(0.0):
        ratio_ref, logp_ref = oracle_readout(model, tok, texts, kl_tokens)
    m_ref, fit, coh, logs, ratios = ratio_ref * honest, 0.0, 0.0, {}, []
    for c in (1.0, -1.0):
        with adapter.steer(c):
            ratio, logp = oracle_readout(model, tok, texts, kl_tokens)
        moved = ratio * honest - m_ref                                 # [b] honest margin change
        kl_c = kl(logp, logp_ref).mean()
        fit = fit + (moved.mean() - c).pow(2)                          # the batch's mean move
        coh = coh + F.relu(kl_c - kl_tau).pow(2)
        logs[f"m{c:+.0f}"], logs[f"kl{c:+.0f}"] = moved.mean().item(), kl_c.item()
        ratios.append(ratio)
    loss = fit + kl_weight * coh
    if even_weight > 0:
        even = (ratios[0] + ratios[1]) / 2 - ratio_ref                 # [b]
        loss = loss + even_weight * even.pow(2).mean()
        logs["even"] = even.abs().mean().item()
    return loss, dict(logs, loss=loss.item(), fit=fit.item(), coh=coh.item())


def train_oracle(model, tok, adapter, rows, honest, steps=60, batch_rows=8, lr=1e-3, kl_tau=0.1, kl_weight=10.0,
                 kl_tokens=4, warmup=0.1, clip=1.0, seed=0, even_weight=0.0, progress=True):
    """Fit θ, λ of `adapter` by the oracle loss (module docstring) on `rows`; the model's weights are
    frozen meanwhile and their requires_grad restored after. Returns the training stats."""
    prompts, honest = dilemmas.row_prompts(tok, rows), honest.to(input_device(model))
    batches = oracle_batches(rows, batch_rows, steps, seed)
    opt = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=0.0)
    lr_at = scheduler(opt, TrainConfig(steps=steps, warmup=warmup, lr=lr, schedule="cosine"))
    start, history = time.time(), []
    with frozen_weights(model):
        with tqdm(batches, desc="oracle", disable=not progress) as bar:
            for step, idx in enumerate(bar):
                loss, logs = oracle_loss(model, tok, adapter, [prompts[i] for i in idx], honest[idx], kl_tau,
                                         kl_weight, kl_tokens, even_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(adapter.parameters(), clip)
                opt.step()
                lr_at.step()
                if not math.isfinite(logs["loss"]):
                    raise InputError(f"non-finite oracle loss at step {step} ({logs}): lower --lr")
                history.append(logs)
                bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
    used = sorted({i for idx in batches for i in idx})
    tail = history[-max(1, steps // 4):]                                   # the last quarter of the steps
    return {"split": "tune", "steps": steps, "batch_rows": len(batches[0]), "lr": lr, "kl_tau": kl_tau,
            "kl_weight": kl_weight, "kl_tokens": kl_tokens, "warmup": warmup, "seed": seed,
            "loss": "sum over c = +-1 of (mean_rows(m_c - m_0) - c)^2 + w relu(KL_c - tau)^2"
                    + (f" + {even_weight} mean_rows((r_+1 + r_-1)/2 - r_0)^2" if even_weight > 0 else ""),
            "n_rows": len(used), "n_available": len(rows),
            "dilemma_ids": sorted({rows[i]["dilemma_idx"] for i in used}),
            "final": {k: sum(x[k] for x in tail) / len(tail) for k in tail[0]},
            "seconds": round(time.time() - start, 1)}


def make_oracle(model, tok, rows, honest, rank=64, max_angle=MAX_ANGLE, seed=0, sources=None, **train_args):
    """The sign-calibrated oracle adapter (kind "oracle"), attached to `model`; save it with .save(path)."""
    torch.manual_seed(seed)
    adapter = InnerPiSSA.attach(model, rank=rank, max_angle=max_angle or None)   # the method's default form
    adapter.kind = "oracle"
    stats = train_oracle(model, tok, adapter, rows, honest, seed=seed, **train_args)
    report = sign_report(adapter.steer, sources or probe_sources(), probe_margins(model, tok))
    adapter.set_sign(report["sign"])
    adapter.evidence = {"training": stats, "sign_report": report,
                        "scale": "coeff 1 = trained to move the honest Yes/No log-ratio of tune rows by 1 nat"}
    return adapter


# --------------------------------------------------------------------------- the readout objective

def readout_writer(model, i):
    """The MLP output projection of block i (its last residual writer): the read-out basis."""
    return list(residual_writers(model, i).values())[-1]


def readout_space(model, runner, pairs, cfg, rank):
    """basis U_ℓ (top-r left singular vectors of block ℓ's down_proj); d = first PC of z_pos − z_neg."""
    diffs = pair_differences(runner, pairs, cfg)                                          # [p, n, d_model]
    basis = top_svd(readout_writer(model, cfg.layer).weight, rank)[0].to(diffs)            # [d_model, r]
    diffs = (diffs @ basis).flatten(0, 1)                                                 # [p·n, r]
    direction = svd(diffs - diffs.mean(0))[2][0]
    direction = direction if (diffs @ direction).mean() >= 0 else -direction
    return Space(basis, direction, float((diffs @ direction).mean().abs()), float(diffs.pow(2).sum(-1).mean()))


def even_penalty(z_plus, z_minus, z_ref, unit):
    """‖(z₊ + z₋)/2 − z₀‖² per token, in units of ‖z_pos − z_neg‖²: the read-out change both signs share.
    Zero, with zero gradient, on an exactly odd change."""
    return ((z_plus + z_minus) / 2 - z_ref).pow(2).sum(-1).mean() / unit


def readout_loss(space, ref, out, lengths, cfg, progress):
    """Σ_± [−log σ(m_c) + w_kl relu(KL̄_c − τ)²] + w_mono hinge(δ₊, δ₋) + w_even even(z₊, z₋, z₀), KL̄ over
    the reply tokens. The hinge points the way the separation term does: at +1 the output gap grows."""
    z0, logp0 = ref.h @ space.basis, ref.logits.log_softmax(-1)                # [2p, n, r], [u, vocab]
    gap0 = output_gap(ref, ref.per_position(next_token_nll(ref.logits, ref.targets)))
    z, delta, loss, logs = {}, {}, 0.0, {}
    for c in (1.0, -1.0):
        z[c] = out[c].h @ space.basis
        moved = c * (gap(z[c], space.direction) - gap(z0, space.direction)) / space.scale
        coh = F.relu(out[c].per_position(kl(out[c].logits.log_softmax(-1), logp0)).mean() - cfg.kl_tau).pow(2)
        delta[c] = output_gap(out[c], out[c].per_position(next_token_nll(out[c].logits, out[c].targets))) - gap0
        loss = loss - F.logsigmoid(moved) + cfg.coherence_weight * coh
        logs[f"d{c:+.0f}"], logs["coh"] = gap(z[c], space.direction).item(), logs.get("coh", 0.0) + coh.item() / 2
    mono = monotonic_hinge(delta[1.0], delta[-1.0], cfg.mono_margin)
    even = even_penalty(z[1.0], z[-1.0], z0, space.unit)
    logs.update(mono=mono.item(), even=even.item())
    return loss + cfg.mono_weight * mono + cfg.even_weight * even, logs


OBJECTIVES["readout"] = Objective(readout_space, readout_loss, depth=0.75, start=0.25, scaling="exp", recipe=dict(
    lr=4e-3, batch_pairs=4, last_n=4, weight_decay=0.0, mono_weight=1.0, mono_margin=0.05, direction_pairs=64,
    select=False))


# --------------------------------------------------------------------------- CLI

def _count(minimum):
    """argparse type: an int >= minimum."""
    def count(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return count


def _above(minimum, strict=True):
    """argparse type: a float > minimum (strict) or >= minimum; NaN is neither."""
    def number(text):
        value = float(text)
        if not (value > minimum if strict else value >= minimum):
            raise argparse.ArgumentTypeError(f"must be {'above' if strict else 'at least'} {minimum:g}, not {value:g}")
        return value
    return number


def main(argv=None):
    p = ArgParser(description="Build a baseline steering artifact, or export a weight_diff one (see the module "
                              "docstring).")
    sub = p.add_subparsers(dest="kind", required=True, metavar="{" + ",".join(KINDS) + ",oracle,export}")
    baseline_args(sub)
    oracle_args(sub.add_parser("oracle", help="the supervised ceiling: InnerPiSSA's form fitted to labelled tune answers",
                               description="The supervised ceiling (module docstring): the InnerPiSSA adapter "
                                           "trained on the Truthfulness answers of the tune half of the dilemmas."))
    export_args(sub.add_parser("export", help="write a weight_diff artifact at one coeff as a merged, LoRA or GGUF "
                                              "model, or a pca/random one as a llama.cpp control vector",
                               description="Write W + coeff*dW of a weight_diff artifact, or coeff*v_i of a pca/random "
                                           "one as a llama.cpp control vector (--format gguf)."))
    a = p.parse_args(argv)
    if a.kind == "export":
        return run_export(a, "weight_diff", weight_diff_factors, control_directions)
    check_writable(a.out)
    sources = probe_sources(a.probes)
    if a.kind == "oracle":
        return run_oracle(a, sources)
    if a.kind == "weight_diff":
        questions = read_lines(a.questions or DATA_DIR / "questions.txt")[:a.max_questions]  # before loading
        model, tok = load_model(a.model, device_map=a.device_map)
        tensors, meta = make_weight_diff(model, tok, questions, a.target, a.rank, a.steps, a.lr,
                                         a.batch_size, a.seed, a.max_new_tokens, sources)
    else:
        model, tok = load_model(a.model, device_map=a.device_map)
        make = make_random if a.kind == "random" else make_pca
        tensors, meta = make(model, tok, a.layers, a.max_pairs, a.seed, sources)
    save_artifact(a.out, tensors, meta)
    print(f"{a.kind}: sign {meta['sign']:+d}, layers {meta['layers']} -> {a.out}")


def baseline_args(sub):
    """The pca, random and weight_diff subcommands and their flags."""
    helps = {"pca": "first PC of pos-neg block outputs, added at every position",
             "random": "seeded random directions with the pca norms",
             "weight_diff": "low-rank SFT deltas fitted to honest/dishonest persona completions"}
    for kind in KINDS:
        s = sub.add_parser(kind, help=helps[kind], description=helps[kind])
        s.add_argument("--model", default=EMBEDDED, help="hub id, local directory or 'embedded' (default)")
        s.add_argument("--out", required=True, help="artifact path (.safetensors)")
        if kind == "weight_diff":
            s.add_argument("--questions", default=None,
                           help="one user question per line (default data/questions.txt)")
            s.add_argument("--max-questions", type=_count(1), default=None, help="use the first N questions")
            s.add_argument("--target", default=None,
                           help="regex over Linear names (default: innerpissa.default_target)")
            s.add_argument("--rank", type=_count(1), default=4, help="rank of each persona delta (default 4)")
            s.add_argument("--steps", type=_count(1), default=12, help="SFT steps per persona (default 12)")
            s.add_argument("--lr", type=_above(0), default=5e-3, help="AdamW learning rate (default 5e-3)")
            s.add_argument("--batch-size", type=_count(1), default=8, help="SFT batch (default 8)")
            s.add_argument("--max-new-tokens", type=_count(1), default=64, help="completion cap (default 64)")
            s.add_argument("--seed", type=int, default=0, help="seed of the init of A and the batch order")
        else:
            s.add_argument("--layers", type=int, nargs=2, metavar=("START", "END"), default=None,
                           help="decoder blocks START..END-1 (default: the middle half)")
            s.add_argument("--max-pairs", type=_count(2), default=None, help="use N pairs (default: all)")
            s.add_argument("--seed", type=int, default=0, help="seed of the pair order"
                           + (" and of the random directions" if kind == "random" else ""))
        s.add_argument("--probes", nargs="+", default=None,
                       help="Yes/No probe CSVs for the sign, one source each (default data/probes.csv)")
        add_device_map(s)


def oracle_args(s):
    s.add_argument("--model", default=EMBEDDED, help="hub id, local directory or 'embedded' (default)")
    s.add_argument("--out", required=True, help="artifact path (.safetensors)")
    s.add_argument("--dilemmas", default="data", help="'data' (our offline set, default), 'hf' or a CSV path; "
                                                      "only its tune half is read")
    s.add_argument("--values", default=None, help="values.csv path (default: next to the dilemmas CSV)")
    s.add_argument("--steps", type=_count(1), default=60, help="optimiser steps (default 60)")
    s.add_argument("--batch-rows", type=_count(2), default=8,
                   help="rows per step, both rows of each dilemma: an even number (default 8)")
    s.add_argument("--lr", type=_above(0), default=1e-3, help="AdamW peak learning rate (default 1e-3)")
    s.add_argument("--kl-tau", type=_above(0, strict=False), default=0.1, help="KL trust region, nats per token (default 0.1)")
    s.add_argument("--rank", type=_count(1), default=64, help="top-r singular directions per layer (default 64)")
    s.add_argument("--max-angle", type=float, default=MAX_ANGLE,
                   help="rotation bound as InnerPiSSA's, radians (default pi/4; 0 = unbounded)")
    s.add_argument("--seed", type=int, default=0, help="seed of the init and the batch order")
    s.add_argument("--probes", nargs="+", default=None,
                   help="Yes/No probe CSVs for the sign, one source each (default data/probes.csv)")
    add_device_map(s)


def run_oracle(a, sources):
    """baselines.py oracle: read the tune rows (bad input fails before the model loads), train, sign, save."""
    if a.batch_rows % 2:
        raise InputError(f"--batch-rows {a.batch_rows} must be even: each step takes both rows of its dilemmas")
    rows, honest = oracle_rows(a.dilemmas, a.values)
    model, tok = load_model(a.model, device_map=a.device_map)
    adapter = make_oracle(model, tok, rows, honest, a.rank, a.max_angle, a.seed, sources, steps=a.steps,
                          batch_rows=a.batch_rows, lr=a.lr, kl_tau=a.kl_tau)
    adapter.save(a.out)
    adapter.detach()                                                   # hooks out: the model is the base again
    t = adapter.evidence["training"]
    print(f"oracle: {len(adapter.names)} layers, rank {a.rank}, {t['steps']} steps x {t['batch_rows']} rows "
          f"({t['n_rows']} of {t['n_available']} tune rows), {t['seconds']:.0f} s -> {a.out}\n"
          f"  last quarter: honest margin moved {t['final']['m+1']:+.3f} at +1, {t['final']['m-1']:+.3f} at -1; "
          f"KL {t['final']['kl+1']:.3f} / {t['final']['kl-1']:.3f}\n  {describe_sign(adapter.evidence['sign_report'])}")


if __name__ == "__main__":
    run_cli(main)

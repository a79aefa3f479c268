"""InnerPiSSA: steer a language model by rotating and rescaling its weights in their own SVD basis.

The method of AntiPaSTO (arXiv 2601.07473; code github.com/wassname/AntiPaSTO), and only the method:
adapter, training, sign. Every default is the authors' recipe (their code at 85c09b7); DEVIATIONS names
each earlier choice of ours as a switch. harness.py has loading, the cached Yes/No scorer and training step,
export and the command line; baselines.py the baselines and our earlier `readout` objective.

Adapter. For a target linear layer y = x Wᵀ + b, W ∈ ℝ^{d_out×d_in}, keep r singular triplets (the top
r, or r chosen from data) and learn θ_v (θ_u) ∈ ℝ^{r×r} and ΔS ∈ ℝ^r. With A = θ − θᵀ bounded entrywise,
A ← a·tanh(A/a), a = 2·tan(π/8):

    W   = U_r diag(S_r) V_rᵀ + W_res                        (float32, frozen)
    R(c) = (I − cA/2)⁻¹ (I + cA/2)                          orthogonal; R(0) = I, R(−c) = R(c)⁻¹ = R(c)ᵀ
    S_c  = S_r + c·ΔS          (or S_r ⊙ (1 + cλ), S_r ⊙ exp(cλ): --scaling)
    W_c  = U_r R_u(c) diag(S_c) R_v(c)ᵀ V_rᵀ + W_res
    hook: y_c = y + (x V_r) M_c U_rᵀ,  M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r)

c = 0 returns y untouched (the base model bit for bit). c → −c inverts the rotation factors exactly,
but the weight change ΔW(c) = W_c − W is not odd in c: its even part is O(c²). The entrywise bound keeps
each generator entry within ±a; it does not bound a plane's angle by π/4 (the angle can pass it).

Training (contrastive, prompts only; the authors' objective). Pairs: the chat "Pretend you're an honest /
a dishonest person. " (empty system turn) and the same unfinished reply. Three passes per micro-batch of 7
pairs, c = 0 (reference), +1, −1; two micro-batches per optimiser step (mean gradient); h = residual after
block ℓ = L/2. B (4 columns) = taskdiff ∩ suppressed ∩ write: taskdiff the PCA of the centred, norm-floored
last-token differences h_pos − h_neg at ℓ; suppressed what later blocks write and keep but the vocabulary
head does not read; write the residual writers' output space (antipasto_space). Per pair s_c = mean over the
last 3 tokens of (h_pos − h_neg) B, scaled per dim by the floored batch std of s_0; u_c = s_c − s_0;
f_c = min(1, ‖Bᵀ(full change)‖ / max(‖full change‖, 1e-3))^(1−σ), σ: 1 → 0.25 over the first 20 %;
    k = cos(u₊, s_0) f₊ · cos(u₋, s_0) f₋,   L = mean(30k + relu(30k)²) + TV barrier + w_mono hinge.
TV barrier per token: v = relu(½‖p_c − p_0‖₁ − 0.9 √(H_0 + 0.02)), log1p(w v)² + v (c = +1 on honest rows,
−1 on dishonest rows), a mean per pair, then over pairs. Hinge on g_c = per pair, mean of log p_c(tok |
honest) − log p_c(tok | dishonest), δ_c = g_c − g_0: relu(θ − δ₊) + relu(θ + δ₋) or its mirror, whichever
is smaller, θ = 0.5 √H_0 + 0.04 from each pair's honest row. Barrier and hinge read every token both rows
have. w_mono → 30 and w → 10 ramped over 20 % of steps. AdamW under torch's OneCycle. Adapters sit on the
residual writers of blocks [L/10, L/2) on singular directions chosen from data (select_directions).

Sign: training fixes an axis; sign_report scores Yes/No probes at c = ±1 and flips θ, ΔS → −θ, −ΔS (exactly
c → −c) if needed, so +1 means more honest, with a bootstrap interval.

Usage: adapter = InnerPiSSA.attach(model); train(model, tok, adapter, make_pairs(tok)); adapter.save(path)
       python innerpissa.py --model embedded --out runs/x/innerpissa.safetensors   (CLI: harness.py)
"""
import contextlib
import copy
import json
import math
import os
import random
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

DATA_DIR = Path(__file__).resolve().parent / "data"
OBJECTIVE = "antipasto"   # the default objective, chosen on the tune half (results/README.md)
MAX_ANGLE = math.pi / 4   # the authors' rotation bound, radians


class InputError(ValueError):
    """Bad user input. CLIs print it on one line and exit non-zero; nothing is written."""


# ----------------------------------------------------------------------------- the adapter

def cayley(theta, c, max_angle=None, bound="elementwise"):
    """R(c) = (I − cA/2)⁻¹ (I + cA/2), A = θ − θᵀ. With max_angle φ, A is bounded first with a = 2·tan(φ/2):
    "elementwise" (the authors'): A ← a·tanh(A/a), each entry within ±a; "frobenius" (ours): A ← A·a·tanh(‖A‖/a)/‖A‖,
    ‖A‖_F ≤ a, a budget shared by all planes. φ ≥ π leaves A as it is under "elementwise" (as theirs does)."""
    a = theta - theta.T
    if max_angle is not None and bound == "elementwise" and max_angle < math.pi - 1e-6:
        limit = 2 * math.tan(max_angle / 2)
        a = limit * torch.tanh(a / limit)
    elif max_angle is not None and bound == "frobenius":
        limit, norm = 2 * math.tan(max_angle / 2), a.norm().clamp(min=1e-12)
        a = a * (limit * torch.tanh(norm / limit) / norm)
    a = a * (c / 2)
    eye = torch.eye(theta.shape[0], dtype=theta.dtype, device=theta.device)
    return torch.linalg.solve(eye - a, eye + a)


def svd(x, full_matrices=False):
    """(U, S, Vh) of x [m, n] (float32 or float64) on x's device, in x's dtype. On a CPU through numpy's
    LAPACK: a call to torch's (MKL) made the model's later forward passes differ in the last bits from one
    process to the next (2 of 16 processes); numpy's leaves them alone (16 of 16, results/README.md#determinism)."""
    if x.device.type != "cpu":
        return torch.linalg.svd(x, full_matrices=full_matrices)
    return tuple(torch.from_numpy(t) for t in np.linalg.svd(x.detach().numpy(), full_matrices=full_matrices))


def top_svd(weight, rank, index=None):
    """(U_r [d_out, r], S_r [r], V_r [d_in, r]) in float32: the top r triplets, or those at `index`,
    with a canonical sign (largest |entry| of each V column positive)."""
    u, s, vh = svd(weight.detach().float())
    index = torch.arange(rank) if index is None else torch.as_tensor(index).long().cpu()
    u, s, v = u[:, index.to(u.device)], s[index.to(u.device)], vh[index.to(u.device)].T
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))      # [1, r]
    return u * sign, s, v * sign


class SVDSteer(nn.Module):
    """One target Linear: frozen U_r, S_r, V_r buffers and the learnable θ_v, θ_u, λ."""

    def __init__(self, linear, rank, rotate_u, max_angle=None, scaling="add", bound="elementwise", init="authors"):
        super().__init__()
        self.max_angle, self.scaling, self.bound = max_angle, scaling, bound
        self.select(linear, rank)
        self.theta_v = nn.Parameter(init_rotation(rank, init, linear.weight.device))
        self.theta_u = nn.Parameter(init_rotation(rank, init, linear.weight.device)) if rotate_u else None
        self.lam = nn.Parameter(init_scale(rank, init, linear.weight.device))

    def select(self, linear, rank, index=None):
        """(Re)build the frozen triplets: the top r, or the singular directions at `index`."""
        u, s, v = top_svd(linear.weight, rank, index)
        self.index = None if index is None else torch.as_tensor(index).long().cpu()
        for name, t in (("U", u), ("S", s), ("V", v)):
            self.register_buffer(name, t.to(linear.weight.device))

    def scaled_s(self, c):
        """S_c: S_r + cλ ("add", the authors': λ is ΔS, in S's own units), S_r ⊙ (1 + cλ) ("mult") or
        S_r ⊙ exp(cλ) ("exp"). The first two are odd in c."""
        if self.scaling == "add":
            return self.S + c * self.lam
        return self.S * (torch.exp(c * self.lam) if self.scaling == "exp" else 1 + c * self.lam)

    def delta_core(self, c):
        """M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r), [r, r]."""
        r_v = cayley(self.theta_v, c, self.max_angle, self.bound)
        r_u = (cayley(self.theta_u, c, self.max_angle, self.bound) if self.theta_u is not None
               else torch.eye(len(self.S), dtype=self.S.dtype, device=self.S.device))
        return (r_v * self.scaled_s(c)) @ r_u.T - torch.diag(self.S)


def init_rotation(rank, init, device):
    """θ [r, r], small and non-zero (at zero, c = ±1 give identical outputs and the gradient vanishes).
    "authors": θ = x − xᵀ, x ~ N(0, 0.003²) truncated at ±2 (so A = θ − θᵀ has off-diagonal std ≈ 0.0085);
    "small" (ours before): θ ~ N(0, 0.001²)."""
    if init == "small":
        return torch.randn(rank, rank, device=device) * 1e-3
    x = nn.init.trunc_normal_(torch.empty(rank, rank, device=device), std=0.003)
    return x - x.T


def init_scale(rank, init, device):
    """λ [r]: "authors" N(4e-4, 4e-4²) truncated at ±2, "small" N(0, 0.001²)."""
    if init == "small":
        return torch.randn(rank, device=device) * 1e-3
    return nn.init.trunc_normal_(torch.empty(rank, device=device), mean=4e-4, std=4e-4)


class InnerPiSSA(nn.Module):
    """Forward hooks on the target Linears; `steer(c)` picks the coefficient, c = 0 is the base model."""
    kind = "innerpissa"

    def __init__(self, model, target, rank, rotate_u, max_angle=MAX_ANGLE, scaling="add", bound="elementwise",
                 init="authors"):
        super().__init__()
        if scaling not in ("add", "mult", "exp") or bound not in ("elementwise", "frobenius"):
            raise InputError(f"--scaling {scaling!r} must be add, mult or exp and --bound {bound!r} elementwise or frobenius")
        if max_angle is not None and not max_angle > 0:
            raise InputError(f"--max-angle {max_angle} must be above 0 radians (unbounded: 0 on the command line, "
                             "None in code)")
        self.model = [model]  # a list, so the host model is not registered as a submodule
        self.target, self.rank, self.rotate_u, self.max_angle, self.scaling = target, rank, rotate_u, max_angle, scaling
        self.bound = bound
        self.c, self.sign, self.handles, self.evidence = 0.0, 1, [], {}
        self.hosts = find_linears(model, target)
        self.names = list(self.hosts)
        for name, linear in self.hosts.items():
            if not 0 < rank <= min(linear.weight.shape):
                raise InputError(f"--rank {rank} must be in 1..{min(linear.weight.shape)} for {name} "
                                 f"{tuple(linear.weight.shape)}")
        self.layers = nn.ModuleList(SVDSteer(m, rank, rotate_u, max_angle, scaling, bound, init)
                                    for m in self.hosts.values())

    @classmethod
    def attach(cls, model, target=None, rank=64, rotate_u=False, max_angle=MAX_ANGLE, scaling=None, objective=OBJECTIVE,
               bound="elementwise", init="authors"):
        """Hooks on every Linear matching `target`; c = 0 until steer(c). The defaults are the authors' (rank 64,
        V rotated, each entry of A within ±2·tan(π/8), ΔS added to S) and `objective`'s default_target and
        scaling. max_angle=None leaves the rotation unbounded."""
        adapter = cls(model, target or default_target(model, objective=objective), rank, rotate_u, max_angle,
                      scaling or OBJECTIVES[objective].scaling, bound, init)
        for linear, layer in zip(adapter.hosts.values(), adapter.layers):
            adapter.handles.append(linear.register_forward_hook(adapter._hook(layer)))
        return adapter

    def _hook(self, layer):
        def hook(module, inputs, y):
            if self.c == 0:
                return None                                              # untouched: bitwise the base model
            x = inputs[0].to(layer.V)                                    # [batch, seq, d_in], float32
            return y + (((x @ layer.V) @ layer.delta_core(self.c)) @ layer.U.T).to(y)  # [batch, seq, d_out]
        return hook

    @contextlib.contextmanager
    def steer(self, c):
        """Run at coefficient c inside the block; leaving restores the previous c, also on errors."""
        previous, self.c = self.c, float(c)
        try:
            yield self
        finally:
            self.c = previous

    def detach(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []

    @torch.no_grad()
    def set_sign(self, s):
        """s = −1 negates θ and λ, which is exactly c → −c; the running sign goes into the metadata."""
        if s not in (1, -1):
            raise ValueError(f"sign must be ±1, got {s}")
        if s == -1:
            for p in self.parameters():
                p.neg_()
        self.sign *= s

    @torch.no_grad()
    def lora_factors(self, c):
        """{Linear name: (A, B)}, A = V_rᵀ [r, d_in], B = U_r M_cᵀ [d_out, r]: B A = W_c − W, a LoRA exact at c."""
        return {name: (layer.V.T, layer.U @ layer.delta_core(float(c)).T) for name, layer in zip(self.names, self.layers)}

    def merge(self, c):
        """{state-dict key: W_c} to write a plain checkpoint steered at fixed c."""
        return merged_weights(self.model[0], self.lora_factors(c))

    def metadata(self):
        return {"kind": self.kind, "model": self.model[0].config.name_or_path, "target": self.target, "rank": self.rank,
                "rotate_u": self.rotate_u, "max_angle": self.max_angle, "scaling": self.scaling, "bound": self.bound,
                "sign": self.sign, "format": 2,
                "layers": self.names, **self.evidence, "shapes": [list(m.weight.shape) for m in self.hosts.values()]}

    def save(self, path):
        tensors = {}
        for name, layer in zip(self.names, self.layers):
            tensors.update({f"{name}.{k}": v for k, v in layer.named_parameters() if v is not None})
            tensors[f"{name}.S"] = layer.S  # lets load() check it is the same weight matrix
            if layer.index is not None:
                tensors[f"{name}.index"] = layer.index
        save_artifact(path, tensors, self.metadata())

    @classmethod
    def load(cls, model, path, kinds=("innerpissa", "oracle")):
        tensors, meta = load_artifact(path)
        if meta.get("kind") not in kinds:
            raise InputError(f"{path} is a {meta.get('kind')!r} artifact, not one of {', '.join(kinds)}")
        adapter = cls.attach(model, meta["target"], meta["rank"], meta["rotate_u"], meta.get("max_angle"),
                             saved_scaling(meta), bound=meta.get("bound", "frobenius"))
        adapter.kind, adapter.sign = meta["kind"], meta["sign"]
        if adapter.names != meta["layers"] or [list(m.weight.shape) for m in adapter.hosts.values()] != meta["shapes"]:
            adapter.detach()
            raise InputError(f"{path} was trained on {meta['model']!r} with other layers or shapes than this model")
        with torch.no_grad():
            for name, layer, linear in zip(adapter.names, adapter.layers, adapter.hosts.values()):
                if f"{name}.index" in tensors:
                    layer.select(linear, adapter.rank, tensors[f"{name}.index"])
                if not torch.allclose(layer.S.cpu(), tensors[f"{name}.S"], rtol=1e-3, atol=1e-4):
                    adapter.detach()
                    raise InputError(f"{path}: the weights of {name} differ from those it was trained on "
                                     f"({meta['model']!r}); load it onto that model")
                for key, param in layer.named_parameters():
                    param.copy_(tensors[f"{name}.{key}"])
        return adapter


def saved_scaling(meta):
    """The scaling an artifact was trained with. Before format 2, "add" named S ⊙ (1 + cλ) (now "mult")."""
    scaling = meta.get("scaling", "exp")
    return "mult" if scaling == "add" and meta.get("format", 1) < 2 else scaling


@torch.no_grad()
def merged_weights(model, factors):
    """{state-dict key: W + B A} for {Linear name: (A [r, d_in], B [d_out, r])}, summed in float32."""
    modules = dict(model.named_modules())
    return {f"{n}.weight": (modules[n].weight.float() + b.to(modules[n].weight.device) @ a.to(modules[n].weight.device))
            .to(modules[n].weight.dtype) for n, (a, b) in factors.items()}


# ----------------------------------------------------------------------------- layout

def input_device(model):
    """Where token ids go: the device of the input embedding (the first GPU of a device map)."""
    return model.get_input_embeddings().weight.device


def hidden_size(model):
    """d_model, read from the input embedding (configs nest it differently: Gemma3's text_config)."""
    return model.get_input_embeddings().weight.shape[-1]


def find_blocks(model):
    """(name, ModuleList) of the decoder blocks: the longest ModuleList beside the input embedding
    (model.layers, model.language_model.layers, gpt_neox.layers, …), else the longest anywhere."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise InputError(f"{type(model).__name__} has no list of decoder blocks (nn.ModuleList)")
    parent = {m: n for n, m in model.named_modules()}[model.get_input_embeddings()].rpartition(".")[0]
    beside = [(n, m) for n, m in lists if n.rpartition(".")[0] == parent]
    return max(beside or lists, key=lambda item: len(item[1]))


def decoder_layers(model):
    return find_blocks(model)[1]


def residual_writers(model, i):
    """{name: nn.Linear} writing block i's output into the residual stream: in each sub-module the last
    Linear with a d_model-wide output (o_proj, down_proj; GPT-NeoX: attention.dense, mlp.dense_4h_to_h).
    Other projection types (GPT-2's Conv1D) are refused: the adapter hooks nn.Linear."""
    prefix, blocks = find_blocks(model)
    d_model, writers = hidden_size(model), {}
    for child, sub in blocks[i].named_children():
        projections = [(".".join(filter(None, (prefix, str(i), child, n))), m) for n, m in sub.named_modules()
                       if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() == 2]
        linear = [(n, m) for n, m in projections if isinstance(m, nn.Linear) and m.out_features == d_model]
        other = [(n, m) for n, m in projections if not isinstance(m, nn.Linear)]
        if linear:
            writers.update(linear[-1:])
        elif other:
            raise InputError(f"{other[-1][0]} is a {type(other[-1][1]).__name__}, not nn.Linear: InnerPiSSA "
                             "needs nn.Linear projections")
    if not writers:
        raise InputError(f"block {prefix}.{i} has no nn.Linear with a {d_model}-wide output to steer")
    return writers


def default_layer(model, objective=OBJECTIVE):
    """Loss block ℓ at the objective's depth (½ for antipasto, ¾ for readout); never the last block."""
    depth = len(decoder_layers(model))
    return min(int(OBJECTIVES[objective].depth * depth), depth - 2)


def default_target(model, layer=None, objective=OBJECTIVE):
    """Residual writers of blocks [start·L, ℓ) (start 1/10 for antipasto, 1/4 for readout), strictly below the
    loss block ℓ, as a regex over module names: an adapter inside ℓ could move the loss block's coordinates
    directly without changing anything the model computes later."""
    prefix, blocks = find_blocks(model)
    layer = default_layer(model, objective) if layer is None else layer
    start = int(OBJECTIVES[objective].start * len(blocks))
    layers = range(min(start, max(layer - 1, 0)), min(layer, len(blocks)))
    within = dict.fromkeys(n.split(f"{prefix}.{i}.", 1)[1] for i in layers for n in residual_writers(model, i))
    return rf"^{re.escape(prefix)}\.({'|'.join(map(str, layers))})\.({'|'.join(map(re.escape, within))})$"


def find_linears(model, target):
    """{module name: nn.Linear} for every Linear whose name matches the regex `target`."""
    try:
        pattern = re.compile(target)
    except re.error as e:
        raise InputError(f"--target {target!r} is not a valid regex ({e})") from None
    found = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.search(n)}
    if not found:
        raise InputError(f"--target {target!r} matches no nn.Linear; names look like "
                         f"{next(n for n, m in model.named_modules() if isinstance(m, nn.Linear))!r}")
    return found


# ----------------------------------------------------------------------------- prompts and pairs

# Persona templates: (user turn with {} for "an honest" / "a dishonest", system turn or None for none). "authors"
# is their wording and empty system turn; "ours" the wording this project trained with before.
TEMPLATES = {"authors": ("Pretend you're {} person. ", ""),
             "ours": ("Pretend you are {} person making statements about the world.", None)}


def persona(honest, template="authors"):
    return TEMPLATES[template][0].format("an honest" if honest else "a dishonest")


def chat(tokenizer, user, system=None, prefill=""):
    """Chat-formatted text ending inside the assistant turn, which starts with `prefill`; system "" is an
    empty system turn (a template's default system prompt is then not added), None none at all."""
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=False) + prefill  # templates without thinking ignore it


def persona_chat(tokenizer, honest, template="authors", prefill=""):
    return chat(tokenizer, persona(honest, template), system=TEMPLATES[template][1], prefill=prefill)


def make_pairs(tokenizer, n=None, seed=0, suffixes=None, template="authors"):
    """[(honest_text, dishonest_text)]: the same chat with the persona swapped and one unfinished reply
    (suffixes: a list of strings, default the lines of data/suffixes.txt), shuffled by seed."""
    if suffixes is None:
        suffixes = [s.strip() for s in (DATA_DIR / "suffixes.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    suffixes = list(suffixes)
    random.Random(seed).shuffle(suffixes)
    return [(persona_chat(tokenizer, True, template, s), persona_chat(tokenizer, False, template, s))
            for s in suffixes[:n]]


def interleave(pairs):
    """[pos_0, neg_0, pos_1, neg_1, …]: even rows honest, odd rows dishonest."""
    return [text for pair in pairs for text in pair]


def position_ids(attention_mask):
    """0, 1, 2, … over the real tokens of a left-padded row (transformers' default counts the padding)."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def tokenize(tokenizer, texts, device=None):
    """Left-padded batch with position ids that skip the padding."""
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    batch["position_ids"] = position_ids(batch["attention_mask"])
    return {k: v.to(device) for k, v in batch.items()} if device else dict(batch)


def token_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def common_prefix(seqs):
    n = 0
    while n < min(map(len, seqs)) and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def suffix_lengths(tokenizer, pairs, template="authors"):
    """Per pair, the predictions of its reply window. Persona pairs (rows that open with the honest and the
    dishonest persona chat, make_pairs): the shared unfinished reply, the common tail of the two prompts less the
    tail the two chats already share (" person. " and the template's turn markers). Any other pair (--pairs):
    each row's every prediction from the first token where the rows differ to its end, so for one prompt
    answered two ways each answer's own tokens, however many: one number when the two answers have one
    length, else (positive row's, negative row's); see window_of."""
    def tail(a, b):
        return common_prefix([a[::-1], b[::-1]])
    chat_texts = [persona_chat(tokenizer, honest, template) for honest in (True, False)]
    chats = [token_ids(tokenizer, text) for text in chat_texts]
    lengths = []
    for p, q in pairs:
        a, b = token_ids(tokenizer, p), token_ids(tokenizer, q)
        if p.startswith(chat_texts[0]) and q.startswith(chat_texts[1]):                  # a persona pair
            lengths.append(max(tail(a, b) - tail(*chats), 1))
            continue
        own = [max(len(x) - common_prefix([a, b]), 1) for x in (a, b)]
        lengths.append(own[0] if own[0] == own[1] else tuple(own))
    return lengths


def window_of(lengths, r):
    """The window of row r of interleaved pairs (row 2i: pair i's positive, 2i + 1 its negative) from per-pair
    windows: a number for both rows, or (positive's, negative's) where the rows' replies differ in length."""
    n = lengths[r // 2]
    return n if isinstance(n, int) else n[r % 2]


def row_windows(tokenizer, pairs):
    """Per pair, the next-token predictions the authors' losses read: every token both rows have, aligned
    from the end (their left-padded batch, masked where either row is padding), less the first: min(len) − 1."""
    return [min(len(token_ids(tokenizer, p)), len(token_ids(tokenizer, q))) - 1 for p, q in pairs]


def row_window_reads(tokenizer, pairs):
    """Per pair, how many of its whole-row window's predictions can differ between the two rows. Rows of one
    length whose first k tokens agree predict the same token from the same context at every window position
    up to token k, adding exactly 0 to the output gap: for one prompt answered two ways the gap is the answer's
    difference divided by the whole window (results/pairs-hinge/row_dilution.py). Rows of two lengths, aligned
    from the end, read different contexts everywhere."""
    reads = []
    for (p, q), n in zip(pairs, row_windows(tokenizer, pairs)):
        a, b = token_ids(tokenizer, p), token_ids(tokenizer, q)
        shared = n - (len(a) - common_prefix([a, b])) if len(a) == len(b) else 0   # positions whose target is shared too
        reads.append(n - max(shared, 0))
    return reads


# ----------------------------------------------------------------------------- forward passes

class _StopForward(Exception):
    """Raised by a hook once the last block we need has run: the rest of the model is skipped."""


def block_outputs(model, batch, layers, stop=True, inputs=False, **kwargs):
    """({i: output of decoder block i, or its input with inputs=True, [batch, seq, d_model]}, model output
    or None). With stop=True the forward ends once the last of `layers` is read: later blocks and the
    vocabulary head never run."""
    found, blocks = {}, decoder_layers(model)

    def read(i, x):
        found[i] = x[0] if isinstance(x, tuple) else x
        if stop and len(found) == len(layers):
            raise _StopForward

    def register(i):
        if inputs:                        # the block's input: hidden_states, passed by position or by keyword
            return blocks[i].register_forward_pre_hook(
                lambda module, args, kw: read(i, args[0] if args else kw["hidden_states"]), with_kwargs=True)
        return blocks[i].register_forward_hook(lambda module, args, output: read(i, output))
    handles = [register(i) for i in layers]
    out = None
    try:
        out = model(**batch, **kwargs)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found, out


@dataclass
class Pass:
    """One pass over a batch of pairs. h [2p, n, d_model]: the loss block's output at each row's last n
    tokens; the m predictions of the loss windows, row-major, so the positions of rows 2i and 2i+1 (the
    same reply, or two replies of one length) line up: rows [m] the row of each; logits [u, vocab] and
    targets [u] the distinct predictions, `at` [m] which one each window position reads (None: u = m, one
    each). The cached runner's persona-chat predictions, the same in every row of a side, are held once:
    per-position terms are computed on the u and spread with `per_position`."""
    h: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    rows: torch.Tensor | None = None      # pair = row // 2; even rows honest
    at: torch.Tensor | None = None

    def per_position(self, x):
        """x [u, …] over the distinct predictions → [m, …] over the window positions."""
        return x if self.at is None else x[self.at]

    def honest(self, x):
        """The entries of x [m, …] on honest rows; .dishonest the others, in the same reply order."""
        return x[self.rows % 2 == 0]

    def dishonest(self, x):
        return x[self.rows % 2 == 1]


class PairRunner:
    """Runs interleaved pairs at a coefficient: every full row, left-padded. This is the reference step;
    cached_step.CachedPairRunner gives the same numbers (tested) about 3× cheaper from the persona chats'
    key/value cache. `pairs` is read by that subclass. The vocabulary head runs only where a reply token
    is predicted."""
    cached = False

    def __init__(self, model, tokenizer, adapter, pairs, layer, last_n):
        self.model, self.tokenizer, self.adapter, self.layer, self.last_n = model, tokenizer, adapter, layer, last_n
        self.device = input_device(model)

    def steer(self, c):
        """The adapter at c; without one (adapter None: the model as it is) nothing to set."""
        return self.adapter.steer(c) if self.adapter is not None else contextlib.nullcontext()

    def batch(self, texts, c):
        """(the model's inputs, and per input position [N] its row (−1: padding), its place in the row and
        the row's length): here left-padded full rows [rows, S], every position its row's, length S."""
        batch = tokenize(self.tokenizer, texts, self.device)
        rows, width = batch["input_ids"].shape
        place = torch.arange(width, device=self.device).repeat(rows)
        return batch, torch.arange(rows, device=self.device).repeat_interleave(width), place, width

    def run(self, pairs, c, lengths=None):
        """Pass at coefficient c; with `lengths` (reply tokens per pair) also the reply's logits."""
        with self.steer(c):
            batch, row, place, end = self.batch(interleave(pairs), c)
            last = row_major(row, (row >= 0) & (place >= end - self.last_n))         # each row's last n tokens
            if lengths is None:                                   # h only: stop after the loss block
                h = block_outputs(self.model, batch, [self.layer])[0][self.layer]
                return Pass(wide(h.flatten(0, 1)[last].unflatten(0, (-1, self.last_n))))
            n = torch.tensor([window_of(lengths, r) for r in range(2 * len(pairs))] + [0], device=row.device)
            n = n[row]                                            # [N] window of each position's row (padding: 0)
            keep = row_major(row, (row >= 0) & (place >= end - 1 - n) & (place < end - 1))  # those predicting it
            head = self.model.get_output_embeddings().register_forward_pre_hook(
                lambda module, args: (args[0].flatten(0, 1)[keep][None],))      # [1, m, d_model]: only those
            try:
                found, out = block_outputs(self.model, batch, [self.layer], stop=False)
            finally:
                head.remove()
            targets = batch["input_ids"].flatten().roll(-1)[keep]              # the token each kept position predicts
            h = found[self.layer].flatten(0, 1)[last].unflatten(0, (-1, self.last_n))
            return Pass(wide(h), *self.with_chat(wide(out.logits[0]), targets, row[keep], lengths, row, place))

    def with_chat(self, logits, targets, rows, lengths, row, place):
        """Windows that reach back into tokens the batch did not run (cached_step.CachedPairRunner's persona
        chats) get those predictions put in front of each row's (Pass.at); here every row ran whole."""
        return logits, targets, rows, None


def row_major(row, selected):
    """Indices of the flattened input positions where `selected` [N] holds, row by row and within a row
    by position (PairRunner.batch's packed layout holds all honest rows before the dishonest ones)."""
    order = row.argsort(stable=True)
    return order[selected[order]]


def wide(x):
    """x in float32 (float64 stays): the loss maths never runs in bf16."""
    return x if x.dtype == torch.float64 else x.float()


def next_token_nll(logits, targets):
    """−log p(target) per position from logits [..., vocab] and targets [...]: one logsumexp, no
    full log-softmax tensor (the largest allocation with a 49k vocabulary)."""
    logits = wide(logits)
    return logits.logsumexp(-1) - logits.gather(-1, targets[..., None].to(logits.device)).squeeze(-1)


def output_gap(p, nll):
    """Per pair: mean over the shared reply of log p(tok | honest) − log p(tok | dishonest), [pairs]. Where a
    pair's two windows differ in length (answers of two lengths), each row's mean over its own window."""
    pair, other = p.honest(p.rows) // 2, p.dishonest(p.rows) // 2
    if len(pair) != len(other) or bool((pair != other).any()):   # else position by position, bitwise as recorded runs
        return per_pair_mean(p.dishonest(nll), p.dishonest(p.rows)) - per_pair_mean(p.honest(nll), p.honest(p.rows))
    total = nll.new_zeros(int(p.rows.max()) // 2 + 1).index_add(0, pair, p.dishonest(nll) - p.honest(nll))
    return total / torch.bincount(pair, minlength=len(total)).clamp(min=1)


def odd_share(plus, minus, ref):
    """mean‖odd‖ / (mean‖odd‖ + mean‖even‖), odd = (x₊ − x₋)/2, even = (x₊ + x₋)/2 − x₀, norms over the
    last axis (per token of a [rows, tokens, dims] read-out; |x| per row of a [rows] score)."""
    if plus.dim() == 1:
        plus, minus, ref = plus[:, None], minus[:, None], ref[:, None]
    odd = ((plus - minus) / 2).norm(dim=-1).mean()
    even = ((plus + minus) / 2 - ref).norm(dim=-1).mean()
    return float(odd / (odd + even)) if odd + even > 0 else float("nan")


# ----------------------------------------------------------------------------- objectives

@dataclass
class TrainConfig:
    """Training settings. Fields left None come from the objective's recipe (OBJECTIVES[…].recipe); every
    other default is the authors' (wassname/AntiPaSTO at 85c09b7). DEVIATIONS names the settings of ours."""
    objective: str = OBJECTIVE   # a key of OBJECTIVES: "antipasto" (the authors'), "readout" (ours, baselines.py)
    steps: int = 50
    epochs: float | None = None  # if set: steps = ⌈epochs · training pairs / batch_pairs⌉
    patience: int | None = None  # if set: stop when the held-out loss has not improved for this many checks
    check_every: int = 20        # steps between held-out checks (with patience)
    lr: float | None = None      # peak learning rate
    batch_pairs: int | None = None   # pairs per optimiser step
    micro_pairs: int | None = None   # pairs per forward (the batch std and the hinge's orientation are per micro-batch);
                                     # batch_pairs / micro_pairs micro-batches accumulate, mean gradient
    layer: int | None = None     # loss block ℓ (None: default_layer)
    last_n: int | None = None    # the projection term reads the last n tokens of each row
    weight_decay: float | None = None
    mono_weight: float | None = None  # hinge weight (0: off); antipasto ramps it in
    mono_margin: float | None = None  # hinge margin θ, nats (None: 0.5 √H_0 + 0.04, per `margin`)
    proj_weight: float = 1.0     # antipasto: weight of the projection term (1: the authors'; 0: off, an ablation)
    shift_weight: float = 0.0    # antipasto: weight of our shared-shift term (shift_loss; 0: off, the authors')
    shift_reference: str = "batch"   # shift_loss's direction: the batch's mean pair difference, or "pair": each pair's own
    coherence_weight: float = 10.0   # antipasto's TV barrier w, readout's KL term (0: off)
    kl_tau: float = 0.05         # readout: KL trust region on the reply, nats per token
    even_weight: float = 1.0     # readout: penalty on the even part of the read-out change (0: off)
    subspace: int = 4            # antipasto: columns of the loss subspace B (0: the whole residual stream)
    loss_space: str = "taskdiff_x_suppressed_x_write"  # or "taskdiff", or "uncentred" (ours before)
    reference: str = "pair"      # antipasto: each pair's own s_0, or "mean": the batch's mean s_0 for every pair
    select: bool | None = None   # singular directions chosen from data (False: the top r)
    direction_lists: str = "floor"   # data-chosen directions: ⌊r/3⌋, ⌊r/3⌋, r − 2⌊r/3⌋ (or "ceil": ⌈r/3⌉ each)
    floors: str = "authors"      # projection term: their std floor and ‖δ‖ clamp (or "ours": 1e-6 / 1e-12)
    focus_ramp: str = "authors"  # focus exponent 0.75·min(1, t/0.2) (or "linear": 0.75·t)
    tv_mean: str = "pair"        # TV barrier: mean per pair, then over pairs (or "pooled": over all tokens)
    margin: str = "pair"         # hinge margin θ from each pair's honest-row entropy (or "batch": one θ)
    orientation: str = "batch"   # hinge: the smaller of its two orientations (or "projection": the projection's;
                                 # "fixed": +1, the positive rows' side at c = +1)
    window: str = "row"          # TV barrier and hinge over every token both rows have (or "reply": the reply)
    template: str = "authors"    # persona wording (TEMPLATES)
    schedule: str = "onecycle"   # torch's OneCycleLR as theirs (or "cosine": linear warm-up, cosine to 0)
    rotations: str = "learn"     # "off": θ held at 0 (R = I), only the singular values λ learn (an ablation)
    warmup: float = 0.1          # fraction of steps warming up
    clip: float | None = 1.0     # gradient-norm clip (None: off)
    holdout: int = 48            # pairs kept out of training for the held-out diagnostics
    direction_pairs: int | None = None  # training pairs that define the loss space and the data-aware directions
    seed: int = 0


# Our earlier choices, each a named switch back from the authors' recipe (`--deviate NAME`), and one ablation
# (scale-only): the fields each sets, on TrainConfig or (adapter=True) on InnerPiSSA.attach.
DEVIATIONS = {
    "uncentred-subspace": dict(loss_space="uncentred"),   # B: top-4 of uncentred unit-normed differences
    "taskdiff-only": dict(loss_space="taskdiff"),         # B: their taskdiff, no ∩ suppressed ∩ write
    "ceil-lists": dict(direction_lists="ceil"),           # ⌈r/3⌉ per score, filled by the diff score
    "plain-floors": dict(floors="ours"),
    "linear-focus": dict(focus_ramp="linear"),
    "pooled-tv": dict(tv_mean="pooled"),
    "batch-margin": dict(margin="batch"),
    "projection-orientation": dict(orientation="projection"),
    "fixed-orientation": dict(orientation="fixed"),       # the hinge asks +1 for the positive rows' side (an ablation)
    "reply-window": dict(window="reply"),
    "whole-batch": dict(micro_pairs=14),                  # one forward of 14 pairs per step
    "our-template": dict(template="ours"),
    "cosine-schedule": dict(schedule="cosine"),
    "small-init": dict(init="small", adapter=True),
    "relative-scaling": dict(scaling="mult", adapter=True),   # S ⊙ (1 + cλ): the same forward, λ = ΔS / S
    "frobenius-bound": dict(bound="frobenius", max_angle=0.5, adapter=True),
    "scale-only": dict(rotations="off"),                   # no rotations: ΔW = U_r diag(S_c − S_r) V_rᵀ
}


def deviations(names):
    """({InnerPiSSA.attach kwargs}, {TrainConfig kwargs}) for DEVIATIONS names."""
    adapter, cfg = {}, {}
    for name in names:
        if name not in DEVIATIONS:
            raise InputError(f"--deviate {name!r} is not one of {', '.join(DEVIATIONS)}")
        fields = dict(DEVIATIONS[name])
        (adapter if fields.pop("adapter", False) else cfg).update(fields)
    return adapter, cfg


# What each number of TrainConfig must be, checked by resolve once the recipe has filled the Nones.
RANGES = {"steps": (lambda v: v >= 1, "at least 1"), "epochs": (lambda v: v is None or v > 0, "above 0"),
          "patience": (lambda v: v is None or v >= 1, "at least 1"),
          "lr": (lambda v: v >= 0, "at least 0"), "batch_pairs": (lambda v: v >= 1, "at least 1"),
          "micro_pairs": (lambda v: v is None or v >= 1, "at least 1"), "last_n": (lambda v: v >= 1, "at least 1"),
          "direction_pairs": (lambda v: v is None or v >= 1, "at least 1"),
          "check_every": (lambda v: v >= 1, "at least 1"), "warmup": (lambda v: 0 <= v < 1, "in [0, 1)"),
          "clip": (lambda v: v is None or v >= 0, "at least 0 (0: off)"),
          **{name: (lambda v: v is None or v >= 0, "at least 0") for name in (
              "weight_decay", "mono_weight", "mono_margin", "coherence_weight", "kl_tau", "even_weight")}}


def resolve(cfg, model):
    """A copy of cfg with each None taken from its objective's recipe, every number checked (RANGES); the caller's
    cfg is left as it is. Without a model (model None) the layer stays as given: the checks alone."""
    if cfg.objective not in OBJECTIVES:
        raise InputError(f"--objective {cfg.objective!r} must be one of {', '.join(OBJECTIVES)}")
    if cfg.reference not in ("pair", "mean") or cfg.subspace < 0 or cfg.rotations not in ("learn", "off"):
        raise InputError(f"--reference {cfg.reference!r} must be pair or mean, --subspace {cfg.subspace} at least 0, "
                         f"rotations {cfg.rotations!r} learn or off")
    if cfg.proj_weight < 0 or (cfg.proj_weight != 1 and cfg.objective != "antipasto"):
        raise InputError(f"--proj-weight {cfg.proj_weight} must be at least 0, and 1 with --objective {cfg.objective}")
    if cfg.shift_weight < 0 or (cfg.shift_weight and cfg.objective != "antipasto"):
        raise InputError(f"--shift-weight {cfg.shift_weight} must be at least 0, and 0 with --objective {cfg.objective}")
    if cfg.shift_reference not in ("batch", "pair"):
        raise InputError(f"--shift-reference {cfg.shift_reference!r} must be batch or pair")
    fill = {k: v for k, v in OBJECTIVES[cfg.objective].recipe.items() if getattr(cfg, k) is None}
    cfg = replace(cfg, **fill)
    for name, (ok, rule) in RANGES.items():
        if not ok(getattr(cfg, name)):
            raise InputError(f"--{name.replace('_', '-')} {getattr(cfg, name)} must be {rule}")
    micro = min(cfg.micro_pairs or cfg.batch_pairs, cfg.batch_pairs)
    if cfg.batch_pairs % micro:
        raise InputError(f"--batch-pairs {cfg.batch_pairs} must be a multiple of the micro-batch ({micro} pairs): "
                         "set --micro-pairs to a divisor of it")
    cfg = replace(cfg, micro_pairs=micro)
    return cfg if cfg.layer is not None or model is None else replace(cfg, layer=default_layer(model, cfg.objective))


@dataclass
class Space:
    """Where the loss reads: z = h·basis (basis [d_model, k], orthonormal columns); `direction` [k] is the
    axis the diagnostics report along; `scale` |Δ_0| and `unit` mean ‖z_pos − z_neg‖² are readout's units;
    `built` says how the basis was made."""
    basis: torch.Tensor
    direction: torch.Tensor
    scale: float = 1.0
    unit: float = 1.0
    built: str = ""


def batches(pairs, size):
    for start in range(0, len(pairs), size):
        yield pairs[start:start + size]


def gap(z, direction):
    """Δ = mean over pairs and tokens of (z_pos − z_neg)·d."""
    return ((z[0::2] - z[1::2]) @ direction).mean()


@torch.no_grad()
def pair_differences(runner, pairs, cfg):
    """h_pos − h_neg at the unsteered model, [p, n, d_model] over the last n tokens."""
    diffs = []
    for chunk in batches(pairs[:cfg.direction_pairs], cfg.batch_pairs):
        h = runner.run(chunk, 0.0).h
        diffs.append(h[0::2] - h[1::2])
    return torch.cat(diffs)


INTERMEDIATE = 256   # the authors' rank for the subspaces before the final cut to `subspace` columns


def orthonormal(x):
    """Q of the QR decomposition of x [d, k] (numpy's LAPACK on a CPU, like `svd`)."""
    if x.device.type != "cpu":
        return torch.linalg.qr(x)[0]
    return torch.from_numpy(np.linalg.qr(x.detach().numpy())[0])


def taskdiff(diffs):
    """(V [d, k], S [k]), k ≤ 256: PCA of the pairs' differences [p, d], each row divided by its norm plus
    1 % of the median norm (a near-zero row does not become a full vote), then centred."""
    x = diffs.float()
    norms = x.norm(dim=-1, keepdim=True)
    x = x / (norms + 0.01 * norms.median().clamp(min=1e-8))
    _, s, vh = svd(x - x.mean(0))
    return vh[:INTERMEDIATE].T, s[:INTERMEDIATE]


@torch.no_grad()
def kept_writes(runner, pairs):
    """Per row at its last token, h_L − h_s, [2p, d_model], s = ⌊L/10⌋: what blocks s … L−1 wrote into the
    residual stream minus what they erased, Σ_l relu(Δ_l) − relu(−Δ_l) = Σ_l Δ_l with Δ_l = h_{l+1} − h_l (h_L
    after the final norm, the vocabulary head's input, as transformers' hidden_states[-1]; h_s block s's input)."""
    model, start, found = runner.model, int(0.1 * len(decoder_layers(runner.model))), []
    for chunk in batches(pairs, 8):
        batch, row, place, end = runner.batch(interleave(chunk), 0.0)
        last, final = row_major(row, (row >= 0) & (place == end - 1)), {}             # [2p]

        def head_input(module, args):
            final["h"] = args[0].flatten(0, 1)[last]
            return (args[0][:, :1],)                                                  # the head runs on one position
        handle = model.get_output_embeddings().register_forward_pre_hook(head_input)
        try:
            inputs = block_outputs(model, batch, [start], stop=False, inputs=True)[0]
        finally:
            handle.remove()
        found.append((final["h"] - inputs[start].flatten(0, 1)[last]).float())
    return torch.cat(found)


def suppressed(kept, head):
    """(V, S): the authors' "suppressed" directions, written into the residual stream and kept there but not
    read by the vocabulary head: `kept` [2p, d] less its part in the head's top-256 input directions, then
    PCA (centred covariance), top 256. None when those 256 directions span the residual (d_model ≤ 256)."""
    read = svd(head.detach().float().cpu())[2][:INTERMEDIATE].T.to(kept)                # [d, 256]
    if read.shape[1] >= kept.shape[1]:
        return None
    net = kept - (kept @ read) @ read.T
    net = net - net.mean(0)
    u, s, _ = svd(net.T @ net / len(net))
    return u[:, :INTERMEDIATE], s[:INTERMEDIATE]


def write_space(model):
    """(V, None): the top-256 eigenvectors of Σ U_256 U_256ᵀ over every block's residual writers (the output
    directions of o_proj and down_proj, each writer one equal vote)."""
    projector = 0
    for i in range(len(decoder_layers(model))):
        for linear in residual_writers(model, i).values():
            u = svd(linear.weight.detach().float().cpu())[0][:, :INTERMEDIATE]              # [d, ≤256]
            projector = projector + u @ u.T
    return svd(projector)[0][:, :INTERMEDIATE], None


def intersect(a, b):
    """(V, S) of the directions two subspaces share, the authors' approximate intersection: SVD of the cross
    Gram matrix Gᵢⱼ = wᵢ wⱼ ⟨aᵢ, bⱼ⟩, with w each side's S normalised to sum 1 when both have one (else 1 and
    only the directions with cos > 0.5, at least one); V = orthonormalised a·Uₖ + b·Vₖ (the bisectors)."""
    (va, sa), (vb, sb) = a, b
    weighted = sa is not None and sb is not None
    if weighted:
        u, s, vh = svd((va * (sa / (sa.sum() + 1e-8))).T @ (vb * (sb / (sb.sum() + 1e-8))).to(va))
    else:
        u, s, vh = svd(va.T @ vb.to(va))
    k = min(INTERMEDIATE, len(s)) if weighted else max(1, min(INTERMEDIATE, int((s > 0.5).sum())))
    return orthonormal(va @ u[:, :k] + vb.to(va) @ vh[:k].T), s[:k]


def antipasto_space(model, runner, pairs, cfg, rank):
    """B [d_model, k]: the first `subspace` columns of taskdiff ∩ suppressed ∩ write (cfg.loss_space, the
    authors' default), of taskdiff alone ("taskdiff"; also with model None: no weights to intersect with), or
    of the uncentred unit-normed differences ("uncentred", ours before). taskdiff reads each pair's
    last-token difference at the loss block ℓ. Each column is oriented so the mean difference projects
    positive (the loss does not depend on it). subspace = 0: B = I, the whole residual stream."""
    diffs = pair_differences(runner, pairs, cfg)[:, -1]                                    # [p, d_model]
    built = cfg.loss_space if model is not None else "taskdiff"
    if cfg.loss_space == "uncentred":
        unit = diffs / diffs.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        basis, built = svd(unit)[2].T, "uncentred"
    elif cfg.loss_space == "taskdiff" or model is None:
        basis = taskdiff(diffs)[0]
    elif cfg.loss_space == "taskdiff_x_suppressed_x_write":
        found = suppressed(kept_writes(runner, pairs[:cfg.direction_pairs]), model.get_output_embeddings().weight)
        if found is None:
            built = "taskdiff_x_write (suppressed needs d_model > 256: the head's 256 directions span the residual)"
        steno = taskdiff(diffs) if found is None else intersect(taskdiff(diffs), found)
        basis = intersect(steno, write_space(model))[0]
    else:
        raise InputError(f"--loss-space {cfg.loss_space!r} must be taskdiff_x_suppressed_x_write, taskdiff or uncentred")
    basis = basis[:, :cfg.subspace].to(diffs) if cfg.subspace else torch.eye(diffs.shape[1]).to(diffs)
    basis = basis * torch.sign((diffs @ basis).mean(0) + 1e-12)
    return Space(basis, torch.eye(basis.shape[1], dtype=basis.dtype, device=basis.device)[0], built=built)


def choose(scores, rank, lists="floor"):
    """r indices from three scores [n] each (honest, dishonest, diff). "floor" (the authors'): the top ⌊r/3⌋,
    ⌊r/3⌋ and r − 2⌊r/3⌋, their union padded by the best remaining max(honest, dishonest, diff); "ceil" (ours
    before): the top ⌈r/3⌉ of each, padded by the best remaining diff score."""
    rank = min(rank, len(scores[0]))
    sizes = (rank // 3, rank // 3, rank - 2 * (rank // 3)) if lists == "floor" else (-(-rank // 3),) * 3
    chosen = list(dict.fromkeys(j for sc, n in zip(scores, sizes) for j in sc.argsort(descending=True)[:n].tolist()))
    pad = torch.maximum(torch.maximum(scores[0], scores[1]), scores[2]) if lists == "floor" else scores[2]
    chosen += [j for j in pad.argsort(descending=True).tolist() if j not in set(chosen)]
    return sorted(chosen[:rank])


@torch.no_grad()
def select_directions(runner, adapter, pairs, rank, lists="floor"):
    """Per adapted Linear, r singular directions chosen from the input h of its block at the pairs' last
    token: with a_i = h·u_i, honest_i = S_i·mean|a_i(pos)|, dishonest_i = S_i·mean|a_i(neg)|,
    diff_i = S_i·|mean(a_i(pos) − a_i(neg))|, then `choose`. The pairs run through `runner` at c = 0 (cached
    or plain: the same h) up to the last adapted block."""
    prefix = find_blocks(runner.model)[0]
    where = [int(name[len(prefix) + 1:].split(".")[0]) for name in adapter.names]
    readers = [n for i, n in zip(where, adapter.names) if n not in residual_writers(runner.model, i)]
    if readers:  # h·u_i needs u_i in the residual stream: only a writer's output directions are
        raise InputError(f"{readers[0]} does not write the residual stream, so singular directions cannot be "
                         f"chosen from residual states: add --top-directions or target residual writers")
    found = {i: [] for i in set(where)}
    for chunk in batches(pairs, 8):
        batch, row, place, end = runner.batch(interleave(chunk), 0.0)      # (runs the chats before the hooks)
        inputs = block_outputs(runner.model, batch, list(found), inputs=True)[0]
        last = row_major(row, (row >= 0) & (place == end - 1))                       # [2p] each row's last token
        for i in found:
            found[i].append(inputs[i].flatten(0, 1)[last].float())                  # [2p, d_model]
    for i, layer, linear in zip(where, adapter.layers, adapter.hosts.values()):
        u, s, _ = top_svd(linear.weight, min(linear.weight.shape))
        a = torch.cat(found[i]).to(u) @ u                                                  # [2p, k]
        scores = (s * a[0::2].abs().mean(0), s * a[1::2].abs().mean(0), s * (a[0::2] - a[1::2]).mean(0).abs())
        layer.select(linear, rank, choose(scores, rank, lists))


def monotonic_hinge(delta_plus, delta_minus, margin, orient=1.0):
    """mean relu(θ − o·δ₊) + relu(θ + o·δ₋): the output gap moves the way o says at c = +1 and the
    other way at c = −1, each by more than θ (a number, or one per pair); zero, with zero gradient, once
    every pair does."""
    return (F.relu(margin - orient * delta_plus) + F.relu(margin + orient * delta_minus)).mean()


def tv_barrier(p, p_ref, tau, weight):
    """log1p(w·v)² + v per position, v = relu(½‖p − p_ref‖₁ − τ): zero, with zero gradient, inside τ."""
    v = F.relu(0.5 * (p - p_ref).abs().sum(-1) - tau)
    return torch.log1p(weight * v).pow(2) + v


def per_pair_mean(x, rows):
    """Mean of x [m] over the positions of each pair (rows [m] // 2), [pairs that have positions]."""
    pair = rows // 2
    total = x.new_zeros(int(pair.max()) + 1).index_add(0, pair, x)
    count = torch.bincount(pair, minlength=len(total))
    return total[count > 0] / count[count > 0]


def fisher_std(s0, floors="authors"):
    """Per-dimension scale of the reference differences s0 [p, k], detached. The authors': √(biased variance
    + 1e-6) of s0 clamped to ±1e4, floored at max(0.1·median + 1e-6, 0.05); ours: the std clamped at 1e-6."""
    if floors == "ours":
        return (s0.std(0) if len(s0) > 1 else torch.ones_like(s0[0])).clamp(min=1e-6).detach()
    x = s0.detach().clamp(-1e4, 1e4)
    std = ((x - x.mean(0)).pow(2).mean(0) + 1e-6).sqrt()
    return std.clamp(min=max(0.1 * float(std.median()) + 1e-6, 0.05))


def antipasto_loss(space, ref, out, lengths, cfg, progress):
    """mean(30k + relu(30k)²) + TV barrier(+1 on honest rows, −1 on dishonest rows) + w_mono·hinge, with
    k = cos(u₊, s₀)·f₊ · cos(u₋, s₀)·f₋ per pair (module docstring); weights ramped over 20 % of steps.
    Ablations: cfg.reference "mean" puts the batch's mean s₀ in place of each pair's; coherence_weight 0
    drops the barrier; a set mono_margin replaces the entropy-scaled one; proj_weight scales the projection term
    (0: hinge and barrier only); DEVIATIONS the rest; a shift_weight above 0 adds our shift_loss (not the authors')."""
    ramp = min(1.0, progress / 0.2)
    power = 0.75 * (ramp if cfg.focus_ramp == "authors" else progress)        # focus exponent 1 − σ, σ: 1 → 0.25
    full0 = ref.h.mean(1)[0::2] - ref.h.mean(1)[1::2]                         # [p, d_model]
    s0 = full0 @ space.basis                                                  # [p, k]
    std = fisher_std(s0, cfg.floors)
    logp0 = ref.logits.log_softmax(-1)                                        # [u, vocab]: distinct predictions
    entropy = -(logp0.exp() * logp0).sum(-1)                                  # [u]
    tau = 0.9 * torch.sqrt(entropy + 0.02)
    gap0 = output_gap(ref, ref.per_position(next_token_nll(ref.logits, ref.targets)))
    target = s0 if cfg.reference == "pair" else s0.mean(0, keepdim=True).expand_as(s0)   # [p, k]
    cos, delta, coh = {}, {}, ref.h.new_zeros(())
    for c, side in ((1.0, 0), (-1.0, 1)):
        full = out[c].h.mean(1)[0::2] - out[c].h.mean(1)[1::2] - full0        # [p, d_model]
        inside = (full @ space.basis).norm(dim=-1)
        focus = ((inside / full.norm(dim=-1).clamp(min=1e-3)).clamp(max=1.0) if cfg.floors == "authors"
                 else inside / full.norm(dim=-1).clamp(min=1e-12))
        cos[c] = F.cosine_similarity((full @ space.basis) / std, target / std, dim=-1) * focus ** power
        rows, logp = out[c].rows % 2 == side, out[c].logits.log_softmax(-1)  # honest rows at +1, dishonest at −1
        if cfg.coherence_weight:
            barrier = out[c].per_position(tv_barrier(logp.exp(), logp0.exp(), tau, cfg.coherence_weight * ramp))[rows]
            coh = coh + (per_pair_mean(barrier, out[c].rows[rows]).mean() if cfg.tv_mean == "pair" else barrier.mean())
        nll = out[c].per_position(-logp.gather(-1, out[c].targets[:, None]).squeeze(-1))     # [m]
        delta[c] = output_gap(out[c], nll) - gap0
    k = 30 * cos[1.0] * cos[-1.0]
    proj = (k + F.relu(k).pow(2)).mean()
    mono = hinge(delta, ref.per_position(entropy), ref, cos, cfg)
    logs = {"proj": proj.item(), "coh": coh.item(), "mono": mono.item(), "cos+": cos[1.0].mean().item()}
    loss = cfg.proj_weight * proj + coh + cfg.mono_weight * ramp * mono
    if cfg.shift_weight:
        shift, logs["shift+"], logs["shift-"] = shift_loss(ref, out, full0, cfg.shift_reference)
        loss = loss + cfg.shift_weight * ramp * shift
    return loss, logs


def shift_loss(ref, out, full0, reference="batch"):
    """Ours, not the authors': −log σ(a₊) − log σ(−a₋), with a_c the change both rows of a pair share,
    ½(h_pos + h_neg)(c) − ½(h_pos + h_neg)(0) (mean over the last n tokens), read in the residual stream at ℓ
    (not B) along a reference difference d = (h_pos − h_neg)(0). reference "batch": one d̄, the batch's mean,
    a_c = mean_i shift_i·d̄ / ‖d̄‖²; "pair": each pair's own d_i, a_c = Σ_i shift_i·d_i / Σ_i ‖d_i‖² (pairs whose
    honest sides point different ways, such as Yes-honest and No-honest answers, then do not cancel). Both in
    units of the reference's length. The projection term and the hinge read only h_pos − h_neg and the output
    gap, so they never see such a change; this term asks +1 to move both rows the honest way and −1 the other.
    (loss, a₊, a₋)."""
    d = full0 if reference == "pair" else full0.mean(0, keepdim=True)          # [p or 1, d_model]
    unit = d.pow(2).sum(-1).mean().clamp(min=1e-12)
    def shared(p):                                                              # ½(h_pos + h_neg) [p, d_model]
        return p.h.mean(1).unflatten(0, (-1, 2)).mean(1)
    a = {c: ((shared(out[c]) - shared(ref)) * d).sum(-1).mean() / unit for c in (1.0, -1.0)}
    return -F.logsigmoid(a[1.0]) - F.logsigmoid(-a[-1.0]), a[1.0].item(), a[-1.0].item()


def hinge(delta, entropy, ref, cos, cfg):
    """The monotonic hinge of antipasto_loss. Margin θ = 0.5·√H + 0.04 with H the mean reference entropy
    of each pair's honest row (or, margin "batch", of every position; a set mono_margin replaces it).
    Orientation: the smaller of the two (per micro-batch, the authors'), the projection term's, or (fixed) +1:
    the positive rows' side at c = +1, which pairs built honest-first name before training."""
    if cfg.mono_margin is not None:
        margin = cfg.mono_margin
    elif cfg.margin == "pair":
        margin = 0.5 * per_pair_mean(ref.honest(entropy), ref.honest(ref.rows)).sqrt() + 0.04
    else:
        margin = 0.5 * entropy.mean().sqrt() + 0.04
    if cfg.orientation == "batch":
        return torch.minimum(*(monotonic_hinge(delta[1.0], delta[-1.0], margin, o) for o in (1.0, -1.0)))
    if cfg.orientation == "fixed":
        return monotonic_hinge(delta[1.0], delta[-1.0], margin, 1.0)
    orient = 1.0 if (cos[1.0] - cos[-1.0]).mean() >= 0 else -1.0             # the sign the projection picked
    return monotonic_hinge(delta[1.0], delta[-1.0], margin, orient)


@dataclass
class Objective:
    """A training objective: its loss space (model, runner, pairs, cfg, rank) → Space, its loss
    (space, ref, out, lengths, cfg, progress) → (loss, logs), and its recipe: TrainConfig defaults, the
    loss block at depth·L, adapters on the residual writers of blocks [start·L, ℓ), the S scaling."""
    space: Callable
    loss: Callable
    recipe: dict
    depth: float
    start: float
    scaling: str


OBJECTIVES = {"antipasto": Objective(antipasto_space, antipasto_loss, depth=0.5, start=0.1, scaling="add", recipe=dict(
    lr=2e-3, batch_pairs=14, micro_pairs=7, last_n=3, weight_decay=1e-4, mono_weight=30.0, direction_pairs=1000,
    select=True))}


# ----------------------------------------------------------------------------- training

def scheduler(opt, cfg):
    """"onecycle" (the authors'): torch's OneCycleLR from lr/25 up to lr over cfg.warmup of the steps, cosine
    down to lr/25 (lr/25e5 without early stopping), β₁ cycling 0.95 → 0.85 → 0.95; "cosine" (ours before):
    a linear warm-up from 0, then cosine to 0 (also for runs too short for OneCycleLR's two phases)."""
    if cfg.schedule == "onecycle" and cfg.steps * cfg.warmup > 1 and cfg.steps > 3:   # OneCycleLR needs both phases
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=cfg.warmup,
                                                   final_div_factor=1.0 if cfg.patience else 1e5)
    warm = max(1, round(cfg.warmup * cfg.steps))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (step + 1) / warm if step < warm else
                                             0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm))))


def loss_windows(tokenizer, pairs, cfg):
    """Per pair, the predictions the TV barrier and the hinge read: whole rows or the reply (cfg.window)."""
    return row_windows(tokenizer, pairs) if cfg.window == "row" else suffix_lengths(tokenizer, pairs, cfg.template)


def step_loss(runner, space, chunk, cfg, progress):
    """The reference pass at c = 0, then c = +1 and c = −1 in one graph; (loss, logs, passes)."""
    lengths = loss_windows(runner.tokenizer, chunk, cfg)
    with torch.no_grad():
        ref = runner.run(chunk, 0.0, lengths)
    out = {c: runner.run(chunk, c, lengths) for c in (1.0, -1.0)}
    loss, logs = OBJECTIVES[cfg.objective].loss(space, ref, out, lengths, cfg, progress)
    return loss, logs, (ref, out)


def train_step(runner, space, chunk, cfg, opt, progress=0.0):
    """One optimiser step over `chunk`: micro-batches of cfg.micro_pairs, each loss / n backpropagated (the
    mean gradient), clipped, stepped; the logs averaged over the micro-batches."""
    micro = list(batches(chunk, cfg.micro_pairs))
    opt.zero_grad(set_to_none=True)
    logs = []
    for part in micro:
        loss, log, (ref, out) = step_loss(runner, space, part, cfg, progress)
        (loss / len(micro)).backward()
        z = {c: p.h.detach() @ space.basis for c, p in ((0, ref), (1, out[1.0]), (-1, out[-1.0]))}
        logs.append(dict(log, loss=loss.item(), odd_z=odd_share(z[1], z[-1], z[0])))
    if cfg.clip:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip)
    opt.step()
    return {k: float(np.mean([log[k] for log in logs])) for k in logs[0]}


@torch.no_grad()
def heldout_stats(runner, space, pairs, cfg):
    """On pairs never trained on: Δ_c along the space's direction for c = +1, 0, −1, and the odd share of
    the loss-block change (per token) and of the output gap over the reply (per pair): an axis, or alike?"""
    z, gaps = {c: [] for c in (1.0, 0.0, -1.0)}, {c: [] for c in (1.0, 0.0, -1.0)}
    for chunk in batches(pairs, cfg.micro_pairs):
        lengths = suffix_lengths(runner.tokenizer, chunk, cfg.template)
        for c in z:
            p = runner.run(chunk, c, lengths)
            z[c].append(p.h @ space.basis)
            gaps[c].append(output_gap(p, p.per_position(next_token_nll(p.logits, p.targets))))
    z, gaps = {c: torch.cat(v) for c, v in z.items()}, {c: torch.cat(v) for c, v in gaps.items()}
    return {"delta": {c: float(gap(v, space.direction)) for c, v in z.items()},
            "odd_share_readout": odd_share(z[1.0], z[-1.0], z[0.0]),
            "odd_share_output": odd_share(gaps[1.0], gaps[-1.0], gaps[0.0]),
            "output_gap": {c: float(v.mean()) for c, v in gaps.items()}}


@contextlib.contextmanager
def frozen_weights(model):
    """The model's own parameters without gradients inside the block (only an adapter's learn); each one's
    requires_grad restored after, also on an exception."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def train(model, tokenizer, adapter, pairs, cfg=None, progress=True, runner_type=PairRunner):
    """Fit θ, λ of `adapter` with cfg.objective; returns stats incl. pair-examples/s and held-out diagnostics.
    runner_type: the class that runs the passes (cached_step.CachedPairRunner: the same numbers, ~3× cheaper)."""
    cfg = resolve(cfg or TrainConfig(), model)
    if not 0 <= cfg.layer < len(decoder_layers(model)):
        raise InputError(f"--layer {cfg.layer} is out of range 0..{len(decoder_layers(model)) - 1}")
    n_hold = min(cfg.holdout, len(pairs) // 4)
    if n_hold < 1 or len(pairs) - n_hold < cfg.batch_pairs:
        raise InputError(f"{len(pairs)} pairs are too few for batches of {cfg.batch_pairs} plus a held-out slice")
    held, train_pairs = pairs[:n_hold], pairs[n_hold:]
    if cfg.epochs is not None:                                 # ≥ 1 step: epochs > 0 (resolve), pairs ≥ a batch
        cfg = replace(cfg, steps=math.ceil(cfg.epochs * len(train_pairs) / cfg.batch_pairs))
    torch.manual_seed(cfg.seed)
    with frozen_weights(model):                                          # only θ, λ learn: no weight grads
        runner = runner_type(model, tokenizer, adapter, pairs, cfg.layer, cfg.last_n)
        if cfg.select:
            select_directions(runner, adapter, train_pairs[:cfg.direction_pairs], adapter.rank, cfg.direction_lists)
        space = OBJECTIVES[cfg.objective].space(model, runner, train_pairs, cfg, adapter.rank)
        start = time.time()
        steps, logs = fit(runner, space, adapter, train_pairs, held, cfg, progress)
        seconds = time.time() - start
    return {"objective": cfg.objective, "steps": steps, "pair_examples": steps * cfg.batch_pairs,
            "pair_examples_per_s": steps * cfg.batch_pairs / max(seconds, 1e-9), "seconds": seconds,
            "heldout": heldout_stats(runner, space, held, cfg), "final": logs, "n_train": len(train_pairs),
            "n_heldout": n_hold, "layer": cfg.layer, "loss_space": space.built}


def fit(runner, space, adapter, train_pairs, held, cfg, progress=True):
    """The optimiser loop over batches drawn at random (seeded); (steps run, last step's logs). With
    cfg.patience, every cfg.check_every steps the loss on the held-out pairs (at full ramps) is checked;
    training stops after `patience` checks without improvement and keeps the best parameters. With
    cfg.rotations "off" every θ is set to 0 (Cayley(0) = I) and only the λ are optimised."""
    learned = dict(adapter.named_parameters())
    if cfg.rotations == "off":
        with torch.no_grad():
            for name in [n for n in learned if not n.endswith("lam")]:
                learned.pop(name).zero_()
    opt = torch.optim.AdamW(learned.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_at, rng = scheduler(opt, cfg), random.Random(cfg.seed)
    best, kept, waited = math.inf, None, 0
    for step in (bar := tqdm(range(cfg.steps), desc="train", disable=not progress)):
        logs = train_step(runner, space, rng.sample(train_pairs, cfg.batch_pairs), cfg, opt, step / cfg.steps)
        lr_at.step()
        if not math.isfinite(logs["loss"]):
            raise InputError(f"non-finite loss at step {step} ({logs}): lower --lr")
        bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
        if cfg.patience and (step + 1) % cfg.check_every == 0:
            with torch.no_grad():
                loss = np.mean([step_loss(runner, space, chunk, cfg, 1.0)[0].item()
                                for chunk in batches(held, cfg.micro_pairs)])
            if loss < best:
                best, kept, waited = loss, copy.deepcopy(adapter.state_dict()), 0
            else:
                waited += 1
            if waited >= cfg.patience:
                break
    if kept is not None:
        adapter.load_state_dict(kept)
    return step + 1, logs


# ----------------------------------------------------------------------------- sign calibration

def bootstrap_interval(x, n_boot=2000, seed=0, strata=None):
    """95% percentile-bootstrap interval of the mean of x. With `strata` (a label per element) each stratum is
    redrawn on its own at its own size, so a shift that differs only between strata adds no width."""
    x = np.asarray(x, dtype=float)
    labels = np.zeros(len(x)) if strata is None else np.asarray(strata)
    rng = np.random.default_rng(seed)
    groups = [x[labels == label] for label in np.unique(labels)]
    means = sum(g[rng.integers(0, len(g), size=(n_boot, len(g)))].sum(1) for g in groups) / len(x)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def sign_report(steer, sources, margins):
    """Which end of the axis is honest, with its uncertainty. sources: {name: probes}; margins(probes) → [n]
    each probe's margin toward its honest answer under the current steering (harness.probe_margins: the
    evaluation's Yes/No log-ratio). Per probe g = margin(+1) − margin(−1); the sign is that of the mean of g
    over all probes pooled; `agree`: every source's mean points the same way; `certain`: the pooled
    bootstrap interval excludes 0. A steering that only favours "Yes" by b moves g by +2b on a probe whose
    honest answer is Yes and −2b on a No probe: it cancels in the mean of a source with as many of each
    kind (the shipped and the written probes are), and the bootstrap redraws each source's Yes and No
    probes apart (strata) so that it does not widen the interval either."""
    sources = sources if isinstance(sources, dict) else {"probes": sources}
    gaps, kinds = {}, {}
    for name, probes in sources.items():
        with steer(1.0):
            plus = margins(probes)
        with steer(-1.0):
            gaps[name] = plus - margins(probes)
        kinds[name] = [f"{name}:{p['honest_answer']}" for p in probes]
    pooled = np.concatenate(list(gaps.values()))
    interval = bootstrap_interval(pooled, strata=sum(kinds.values(), []))
    report = {name: {"gap": float(g.mean()), "ci": bootstrap_interval(g, strata=kinds[name]), "n": len(g)}
              for name, g in gaps.items()}
    return {"sign": 1 if pooled.mean() >= 0 else -1, "gap": float(pooled.mean()), "ci": interval,
            "sources": report, "agree": len({g["gap"] >= 0 for g in report.values()}) == 1,
            "certain": interval[0] > 0 or interval[1] < 0}


# ----------------------------------------------------------------------------- artifacts

def save_artifact(path, tensors, meta):
    """safetensors with JSON-encoded metadata, written to a temp file and renamed into place."""
    from safetensors.torch import save
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(save({k: v.detach().contiguous().cpu() for k, v in tensors.items()},   # a plain open's mode
                             metadata={k: json.dumps(v) for k, v in meta.items()}))
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"cannot write {path} ({e.strerror}): choose a writable --out") from None
    finally:
        tmp.unlink(missing_ok=True)


def load_artifact(path):
    """(tensors, metadata) of a file written by save_artifact."""
    from safetensors import SafetensorError, safe_open
    if not Path(path).is_file():
        raise InputError(f"artifact {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, json.JSONDecodeError, OSError) as e:
        raise InputError(f"{path} is not a steering artifact ({e})") from None
    if "kind" not in meta:
        raise InputError(f"{path} has no 'kind' in its metadata: not written by this project")
    return tensors, meta


if __name__ == "__main__":
    import baselines  # noqa: F401 (registers the readout objective in OBJECTIVES for --objective readout)
    import harness  # the CLI's plumbing (model loading, probes, argument parsing) lives there
    harness.run_cli(harness.train_main)

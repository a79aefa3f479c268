"""InnerPiSSA: steer a language model by rotating and rescaling its weights in their own SVD basis.

The method of AntiPaSTO (arXiv 2601.07473; code github.com/wassname/AntiPaSTO), and only the method:
adapter, training, sign. harness.py has loading, the cached Yes/No scorer and training step, export and
the command line; baselines.py the baselines and our earlier `readout` objective.

Adapter. For a target linear layer y = x Wᵀ + b, W ∈ ℝ^{d_out×d_in}, keep r singular triplets (the top
r, or r chosen from data) and learn θ_v, θ_u ∈ ℝ^{r×r} and λ ∈ ℝ^r. With A = θ − θᵀ:

    W   = U_r diag(S_r) V_rᵀ + W_res                        (float32, frozen)
    R(c) = (I − cA/2)⁻¹ (I + cA/2)                          orthogonal; R(0) = I, R(−c) = R(c)⁻¹ = R(c)ᵀ
    S_c  = S_r ⊙ exp(cλ)   (or S_r ⊙ (1 + cλ), additive)    exp: S_c ⊙ S_−c = S_r²
    W_c  = U_r R_u(c) diag(S_c) R_v(c)ᵀ V_rᵀ + W_res
    hook: y_c = y + (x V_r) M_c U_rᵀ,  M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r)

c = 0 returns y untouched (the base model bit for bit). c → −c inverts the rotation factors exactly,
but the weight change ΔW(c) = W_c − W is not odd in c: its even part is O(c²). --max-angle φ bounds
‖A‖_F ≤ 2·tan(φ/2), a budget shared by all planes: one plane turns by at most 2·atan(|c|·tan(φ/2)/√2),
under φ for |c| ≤ 1 (0.36 rad at φ = 0.5) and more at the larger doses an evaluation may use.

Training (contrastive, prompts only; the authors' objective). Pairs: one chat with an honest / a
dishonest persona and the same unfinished reply. Three passes per batch, c = 0 (reference), +1, −1;
h = residual after block ℓ = L/2; B = top-4 PCs of the normalised last-token differences h_pos − h_neg.
Per pair s_c = mean over the last 3 tokens of (h_pos − h_neg) B, scaled per dim by the batch std of s_0;
u_c = s_c − s_0; f_c = (‖Bᵀ(full change)‖ / ‖full change‖)^(1−σ), σ: 1 → 0.25;
    k = cos(u₊, s_0) f₊ · cos(u₋, s_0) f₋,   L = mean(30k + relu(30k)²) + TV barrier + w_mono hinge,
TV barrier per reply token: v = relu(½‖p_c − p_0‖₁ − 0.9 √(H_0 + 0.02)), log1p(w v)² + v (c = +1 on
honest rows, −1 on dishonest rows). Hinge on g_c = per pair, mean over the reply of log p_c(tok | honest)
− log p_c(tok | dishonest), δ_c = g_c − g_0: relu(θ − δ₊) + relu(θ + δ₋), θ = 0.5 √H̄_0 + 0.04, pointing
the way the projection term picked; w_mono → 30 and w → 10 ramped over 20 % of steps. Adapters sit on
the residual writers of blocks [L/10, L/2) on singular directions chosen from data.

Sign: training fixes an axis; sign_report scores Yes/No probes at c = ±1 and flips θ, λ → −θ, −λ (exactly
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


class InputError(ValueError):
    """Bad user input. CLIs print it on one line and exit non-zero; nothing is written."""


# ----------------------------------------------------------------------------- the adapter

def cayley(theta, c, max_angle=None):
    """R(c) = (I − cA/2)⁻¹ (I + cA/2), A = θ − θᵀ; with max_angle, A shrinks smoothly to
    ‖A‖_F ≤ a = 2·tan(max_angle/2) (A ← A·a·tanh(‖A‖/a)/‖A‖), a budget shared by all planes."""
    a = theta - theta.T
    if max_angle is not None:
        bound, norm = 2 * math.tan(max_angle / 2), a.norm().clamp(min=1e-12)
        a = a * (bound * torch.tanh(norm / bound) / norm)
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

    def __init__(self, linear, rank, rotate_u, max_angle=None, scaling="exp"):
        super().__init__()
        self.max_angle, self.scaling = max_angle, scaling
        self.select(linear, rank)
        device = linear.weight.device
        # Small non-zero init: at zero, c = ±1 give identical outputs and the gradient vanishes.
        self.theta_v = nn.Parameter(torch.randn(rank, rank, device=device) * 1e-3)
        self.theta_u = nn.Parameter(torch.randn(rank, rank, device=device) * 1e-3) if rotate_u else None
        self.lam = nn.Parameter(torch.randn(rank, device=device) * 1e-3)

    def select(self, linear, rank, index=None):
        """(Re)build the frozen triplets: the top r, or the singular directions at `index`."""
        u, s, v = top_svd(linear.weight, rank, index)
        self.index = None if index is None else torch.as_tensor(index).long().cpu()
        for name, t in (("U", u), ("S", s), ("V", v)):
            self.register_buffer(name, t.to(linear.weight.device))

    def scaled_s(self, c):
        """S_c = S_r ⊙ exp(cλ) (default), or the additive S_r ⊙ (1 + cλ), odd in c."""
        return self.S * (torch.exp(c * self.lam) if self.scaling == "exp" else 1 + c * self.lam)

    def delta_core(self, c):
        """M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r), [r, r]."""
        r_v = cayley(self.theta_v, c, self.max_angle)
        r_u = (cayley(self.theta_u, c, self.max_angle) if self.theta_u is not None
               else torch.eye(len(self.S), dtype=self.S.dtype, device=self.S.device))
        return (r_v * self.scaled_s(c)) @ r_u.T - torch.diag(self.S)


class InnerPiSSA(nn.Module):
    """Forward hooks on the target Linears; `steer(c)` picks the coefficient, c = 0 is the base model."""
    kind = "innerpissa"

    def __init__(self, model, target, rank, rotate_u, max_angle=0.5, scaling="exp"):
        super().__init__()
        if scaling not in ("exp", "add"):
            raise InputError(f"--scaling {scaling!r} must be exp or add")
        self.model = [model]  # a list, so the host model is not registered as a submodule
        self.target, self.rank, self.rotate_u, self.max_angle, self.scaling = target, rank, rotate_u, max_angle, scaling
        self.c, self.sign, self.handles, self.evidence = 0.0, 1, [], {}
        self.hosts = find_linears(model, target)
        self.names = list(self.hosts)
        for name, linear in self.hosts.items():
            if not 0 < rank <= min(linear.weight.shape):
                raise InputError(f"--rank {rank} must be in 1..{min(linear.weight.shape)} for {name} "
                                 f"{tuple(linear.weight.shape)}")
        self.layers = nn.ModuleList(SVDSteer(m, rank, rotate_u, max_angle, scaling) for m in self.hosts.values())

    @classmethod
    def attach(cls, model, target=None, rank=64, rotate_u=False, max_angle=0.5, scaling=None, objective=OBJECTIVE):
        """Hooks on every Linear matching `target`; c = 0 until steer(c). The defaults are the CLI's recipe
        for `objective`: its default_target and scaling. max_angle=None leaves the rotation unbounded."""
        adapter = cls(model, target or default_target(model, objective=objective), rank, rotate_u, max_angle,
                      scaling or OBJECTIVES[objective].scaling)
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
                "rotate_u": self.rotate_u, "max_angle": self.max_angle, "scaling": self.scaling, "sign": self.sign,
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
                             meta.get("scaling", "exp"))
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

def persona(honest):
    return f"Pretend you are {'an honest' if honest else 'a dishonest'} person making statements about the world."


def chat(tokenizer, user, system=None, prefill=""):
    """Chat-formatted text ending inside the assistant turn, which starts with `prefill`."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=False) + prefill  # templates without thinking ignore it


def make_pairs(tokenizer, n=None, seed=0, suffixes=None):
    """[(honest_text, dishonest_text)]: the same chat with the persona swapped and one unfinished reply
    (suffixes: a list of strings, default the lines of data/suffixes.txt), shuffled by seed."""
    if suffixes is None:
        suffixes = [s.strip() for s in (DATA_DIR / "suffixes.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    suffixes = list(suffixes)
    random.Random(seed).shuffle(suffixes)
    return [(chat(tokenizer, persona(True), prefill=s), chat(tokenizer, persona(False), prefill=s))
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


def suffix_lengths(tokenizer, pairs):
    """Tokens of each pair's shared unfinished reply: the common tail of its two prompts, less the tail
    that the two persona chats already share ("… person making statements …")."""
    def tail(a, b):
        return common_prefix([a[::-1], b[::-1]])
    template = tail(token_ids(tokenizer, chat(tokenizer, persona(True))), token_ids(tokenizer, chat(tokenizer, persona(False))))
    return [max(tail(token_ids(tokenizer, p), token_ids(tokenizer, q)) - template, 1) for p, q in pairs]


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
    tokens; logits [m, vocab] only where a reply token is predicted, row-major, so the positions of
    rows 2i and 2i+1 (the same reply) line up; targets [m] those tokens; rows [m] the row of each."""
    h: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    rows: torch.Tensor | None = None      # pair = row // 2; even rows honest

    def honest(self, x):
        """The entries of x [m, …] on honest rows; .dishonest the others, in the same reply order."""
        return x[self.rows % 2 == 0]

    def dishonest(self, x):
        return x[self.rows % 2 == 1]


class PairRunner:
    """Runs interleaved pairs at a coefficient: every full row, left-padded. This is the reference step;
    harness.CachedPairRunner gives the same numbers (tested) about 4× cheaper from the persona chats'
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
            n = torch.tensor(lengths + [0], device=row.device).repeat_interleave(2)      # [2p + 2]: per row, pads last
            n = n[:-1][row]                                       # [N] reply tokens of each position's row
            keep = row_major(row, (row >= 0) & (place >= end - 1 - n) & (place < end - 1))  # those predicting it
            head = self.model.get_output_embeddings().register_forward_pre_hook(
                lambda module, args: (args[0].flatten(0, 1)[keep][None],))      # [1, m, d_model]: only those
            try:
                found, out = block_outputs(self.model, batch, [self.layer], stop=False)
            finally:
                head.remove()
            targets = batch["input_ids"].flatten().roll(-1)[keep]              # the token each kept position predicts
            h = found[self.layer].flatten(0, 1)[last].unflatten(0, (-1, self.last_n))
            return Pass(wide(h), wide(out.logits[0]), targets, row[keep])


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
    """Per pair: mean over the shared reply of log p(tok | honest) − log p(tok | dishonest), [pairs]."""
    pair, diff = p.honest(p.rows) // 2, p.dishonest(nll) - p.honest(nll)
    total = nll.new_zeros(int(p.rows.max()) // 2 + 1).index_add(0, pair, diff)
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
    objective: str = OBJECTIVE   # a key of OBJECTIVES: "antipasto" (the authors'), "readout" (ours, baselines.py)
    steps: int = 50
    epochs: float | None = None  # if set: steps = ⌈epochs · training pairs / batch_pairs⌉
    patience: int | None = None  # if set: stop when the held-out loss has not improved for this many checks
    check_every: int = 20        # steps between held-out checks (with patience)
    lr: float | None = None      # None: the objective's recipe (OBJECTIVES[…].recipe), likewise below
    batch_pairs: int | None = None   # pairs per step: 2 × batch_pairs rows
    layer: int | None = None     # loss block ℓ (None: default_layer)
    last_n: int | None = None    # the loss reads the last n tokens of each row
    weight_decay: float | None = None
    mono_weight: float | None = None  # hinge weight (0: off); antipasto ramps it in
    mono_margin: float | None = None  # hinge margin θ, nats (None: 0.5 √H̄_0 + 0.04)
    coherence_weight: float = 10.0   # antipasto's TV barrier w, readout's KL term (0: off)
    kl_tau: float = 0.05         # readout: KL trust region on the reply, nats per token
    even_weight: float = 1.0     # readout: penalty on the even part of the read-out change (0: off)
    subspace: int = 4            # antipasto: columns of the loss subspace B (0: the whole residual stream)
    reference: str = "pair"      # antipasto: each pair's own s_0, or "mean": the batch's mean s_0 for every pair
    select: bool | None = None   # singular directions chosen from data (False: the top r)
    warmup: float = 0.1          # fraction of steps with a linear warm-up, then cosine decay to 0
    clip: float | None = 1.0     # gradient-norm clip (None: off)
    holdout: int = 48            # pairs kept out of training for the held-out diagnostics
    direction_pairs: int | None = None  # training pairs that define the loss space and the data-aware directions
    seed: int = 0


def resolve(cfg, model):
    """A copy of cfg with each None taken from its objective's recipe; the caller's cfg is left as it is."""
    if cfg.objective not in OBJECTIVES:
        raise InputError(f"--objective {cfg.objective!r} must be one of {', '.join(OBJECTIVES)}")
    if cfg.reference not in ("pair", "mean") or cfg.subspace < 0:
        raise InputError(f"--reference {cfg.reference!r} must be pair or mean, --subspace {cfg.subspace} at least 0")
    fill = {k: v for k, v in OBJECTIVES[cfg.objective].recipe.items() if getattr(cfg, k) is None}
    cfg = replace(cfg, **fill)
    return cfg if cfg.layer is not None else replace(cfg, layer=default_layer(model, cfg.objective))


@dataclass
class Space:
    """Where the loss reads: z = h·basis (basis [d_model, k], orthonormal columns); `direction` [k] is the
    axis the diagnostics report along; `scale` |Δ_0| and `unit` mean ‖z_pos − z_neg‖² are readout's units."""
    basis: torch.Tensor
    direction: torch.Tensor
    scale: float = 1.0
    unit: float = 1.0


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


def antipasto_space(model, runner, pairs, cfg, rank):
    """B: the top `subspace` right singular vectors of the row-normalised last-token differences (not
    centred: their mean is the signal), each oriented so the mean difference projects positive.
    subspace = 0: all of them, B spans the whole residual stream (the subspace ablated)."""
    diffs = pair_differences(runner, pairs, cfg)[:, -1]                                    # [p, d_model]
    diffs = diffs / diffs.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    vh = svd(diffs, full_matrices=True)[2]                                                 # [d_model, d_model]
    basis = (vh[:cfg.subspace] if cfg.subspace else vh).T                                  # [d_model, k]
    basis = basis * torch.sign((diffs @ basis).mean(0) + 1e-12)
    return Space(basis, torch.eye(basis.shape[1], dtype=basis.dtype, device=basis.device)[0])


@torch.no_grad()
def select_directions(runner, adapter, pairs, rank):
    """Per adapted Linear, r singular directions chosen from the input h of its block at the pairs' last
    token: with a_i = h·u_i, honest_i = S_i·mean|a_i(pos)|, dishonest_i = S_i·mean|a_i(neg)|,
    diff_i = S_i·|mean(a_i(pos) − a_i(neg))|; the top ⌈r/3⌉ by each, their union, filled up to r by diff.
    The pairs run through `runner` at c = 0 (cached or plain: the same h) up to the last adapted block."""
    prefix = find_blocks(runner.model)[0]
    where = [int(name[len(prefix) + 1:].split(".")[0]) for name in adapter.names]
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
        chosen = list(dict.fromkeys(j for sc in scores for j in sc.argsort(descending=True)[:-(-rank // 3)].tolist()))
        chosen += [j for j in scores[2].argsort(descending=True).tolist() if j not in chosen]
        layer.select(linear, rank, sorted(chosen[:rank]))


def monotonic_hinge(delta_plus, delta_minus, margin, orient=1.0):
    """mean relu(θ − o·δ₊) + relu(θ + o·δ₋): the output gap moves the way o says at c = +1 and the
    other way at c = −1, each by more than θ; zero, with zero gradient, once every pair does."""
    return (F.relu(margin - orient * delta_plus) + F.relu(margin + orient * delta_minus)).mean()


def tv_barrier(p, p_ref, tau, weight):
    """log1p(w·v)² + v per position, v = relu(½‖p − p_ref‖₁ − τ): zero, with zero gradient, inside τ."""
    v = F.relu(0.5 * (p - p_ref).abs().sum(-1) - tau)
    return torch.log1p(weight * v).pow(2) + v


def antipasto_loss(space, ref, out, lengths, cfg, progress):
    """mean(30k + relu(30k)²) + TV barrier(+1 on honest rows, −1 on dishonest rows) + w_mono·hinge, with
    k = cos(u₊, s₀)·f₊ · cos(u₋, s₀)·f₋ per pair (module docstring); weights ramped over 20 % of steps.
    Ablations: cfg.reference "mean" puts the batch's mean s₀ in place of each pair's; coherence_weight 0
    drops the barrier; a set mono_margin replaces the entropy-scaled one."""
    ramp, power = min(1.0, progress / 0.2), 0.75 * progress                   # power = 1 − σ, σ: 1 → 0.25
    full0 = ref.h.mean(1)[0::2] - ref.h.mean(1)[1::2]                         # [p, d_model]
    s0 = full0 @ space.basis                                                  # [p, k]
    std = (s0.std(0) if len(s0) > 1 else torch.ones_like(s0[0])).clamp(min=1e-6).detach()
    logp0 = ref.logits.log_softmax(-1)                                        # [m, vocab]
    entropy = -(logp0.exp() * logp0).sum(-1)                                  # [m]
    tau, gap0 = 0.9 * torch.sqrt(entropy + 0.02), output_gap(ref, next_token_nll(ref.logits, ref.targets))
    target = s0 if cfg.reference == "pair" else s0.mean(0, keepdim=True).expand_as(s0)   # [p, k]
    cos, delta, coh = {}, {}, ref.h.new_zeros(())
    for c, side in ((1.0, 0), (-1.0, 1)):
        full = out[c].h.mean(1)[0::2] - out[c].h.mean(1)[1::2] - full0        # [p, d_model]
        inside = ((full @ space.basis).norm(dim=-1) / full.norm(dim=-1).clamp(min=1e-12)) ** power
        cos[c] = F.cosine_similarity((full @ space.basis) / std, target / std, dim=-1) * inside
        rows, logp = out[c].rows % 2 == side, out[c].logits.log_softmax(-1)  # honest rows at +1, dishonest at −1
        if cfg.coherence_weight:
            coh = coh + tv_barrier(logp[rows].exp(), logp0[rows].exp(), tau[rows], cfg.coherence_weight * ramp).mean()
        delta[c] = output_gap(out[c], -logp.gather(-1, out[c].targets[:, None]).squeeze(-1)) - gap0
    k = 30 * cos[1.0] * cos[-1.0]
    proj = (k + F.relu(k).pow(2)).mean()
    orient = 1.0 if (cos[1.0] - cos[-1.0]).mean() >= 0 else -1.0             # the sign the projection picked
    margin = 0.5 * entropy.mean().sqrt() + 0.04 if cfg.mono_margin is None else cfg.mono_margin
    mono = monotonic_hinge(delta[1.0], delta[-1.0], margin, orient)
    logs = {"proj": proj.item(), "coh": coh.item(), "mono": mono.item(), "cos+": cos[1.0].mean().item()}
    return proj + coh + cfg.mono_weight * ramp * mono, logs


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
    lr=2e-3, batch_pairs=14, last_n=3, weight_decay=1e-4, mono_weight=30.0, direction_pairs=256, select=True))}


# ----------------------------------------------------------------------------- training

def schedule(cfg):
    """Learning-rate factor per step: linear warm-up over cfg.warmup of the steps, then cosine to 0."""
    warm = max(1, round(cfg.warmup * cfg.steps))
    return lambda step: (step + 1) / warm if step < warm else \
        0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


def step_loss(runner, space, chunk, cfg, progress):
    """The reference pass at c = 0, then c = +1 and c = −1 in one graph; (loss, logs, passes)."""
    lengths = suffix_lengths(runner.tokenizer, chunk)
    with torch.no_grad():
        ref = runner.run(chunk, 0.0, lengths)
    out = {c: runner.run(chunk, c, lengths) for c in (1.0, -1.0)}
    loss, logs = OBJECTIVES[cfg.objective].loss(space, ref, out, lengths, cfg, progress)
    return loss, logs, (ref, out)


def train_step(runner, space, chunk, cfg, opt, progress=0.0):
    loss, logs, (ref, out) = step_loss(runner, space, chunk, cfg, progress)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip)
    opt.step()
    z = {c: p.h.detach() @ space.basis for c, p in ((0, ref), (1, out[1.0]), (-1, out[-1.0]))}
    return dict(logs, loss=loss.item(), odd_z=odd_share(z[1], z[-1], z[0]))


@torch.no_grad()
def heldout_stats(runner, space, pairs, cfg):
    """On pairs never trained on: Δ_c along the space's direction for c = +1, 0, −1, and the odd share of
    the loss-block change (per token) and of the output gap (per pair): an axis, or alike (damage)?"""
    z, gaps = {c: [] for c in (1.0, 0.0, -1.0)}, {c: [] for c in (1.0, 0.0, -1.0)}
    for chunk in batches(pairs, cfg.batch_pairs):
        lengths = suffix_lengths(runner.tokenizer, chunk)
        for c in z:
            p = runner.run(chunk, c, lengths)
            z[c].append(p.h @ space.basis)
            gaps[c].append(output_gap(p, next_token_nll(p.logits, p.targets)))
    z, gaps = {c: torch.cat(v) for c, v in z.items()}, {c: torch.cat(v) for c, v in gaps.items()}
    return {"delta": {c: float(gap(v, space.direction)) for c, v in z.items()},
            "odd_share_readout": odd_share(z[1.0], z[-1.0], z[0.0]),
            "odd_share_output": odd_share(gaps[1.0], gaps[-1.0], gaps[0.0]),
            "output_gap": {c: float(v.mean()) for c, v in gaps.items()}}


def train(model, tokenizer, adapter, pairs, cfg=None, progress=True, runner_type=PairRunner):
    """Fit θ, λ of `adapter` with cfg.objective; returns stats incl. pair-examples/s and held-out diagnostics.
    runner_type: the class that runs the passes (harness.CachedPairRunner: the same numbers, ~4× cheaper)."""
    cfg = resolve(cfg or TrainConfig(), model)
    if not 0 <= cfg.layer < len(decoder_layers(model)):
        raise InputError(f"--layer {cfg.layer} is out of range 0..{len(decoder_layers(model)) - 1}")
    n_hold = min(cfg.holdout, len(pairs) // 4)
    if n_hold < 1 or len(pairs) - n_hold < cfg.batch_pairs:
        raise InputError(f"{len(pairs)} pairs are too few for batches of {cfg.batch_pairs} plus a held-out slice")
    held, train_pairs = pairs[:n_hold], pairs[n_hold:]
    if cfg.epochs is not None:
        cfg = replace(cfg, steps=math.ceil(cfg.epochs * len(train_pairs) / cfg.batch_pairs))
    if cfg.steps < 1 or (cfg.patience is not None and cfg.patience < 1):
        raise InputError(f"--steps/--epochs give {cfg.steps} steps and --patience is {cfg.patience}: "
                         "train at least 1 step, with a patience of at least 1 check")
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)                                          # only θ, λ learn: no weight grads
    torch.manual_seed(cfg.seed)
    try:
        runner = runner_type(model, tokenizer, adapter, pairs, cfg.layer, cfg.last_n)
        if cfg.select:
            select_directions(runner, adapter, train_pairs[:cfg.direction_pairs], adapter.rank)
        space = OBJECTIVES[cfg.objective].space(model, runner, train_pairs, cfg, adapter.rank)
        start = time.time()
        steps, logs = fit(runner, space, adapter, train_pairs, held, cfg, progress)
        seconds = time.time() - start
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return {"objective": cfg.objective, "steps": steps, "pair_examples": steps * cfg.batch_pairs,
            "pair_examples_per_s": steps * cfg.batch_pairs / max(seconds, 1e-9), "seconds": seconds,
            "heldout": heldout_stats(runner, space, held, cfg), "final": logs, "n_train": len(train_pairs),
            "n_heldout": n_hold, "layer": cfg.layer}


def fit(runner, space, adapter, train_pairs, held, cfg, progress=True):
    """The optimiser loop over batches drawn at random (seeded); (steps run, last step's logs). With
    cfg.patience, every cfg.check_every steps the loss on the held-out pairs (at full ramps) is checked;
    training stops after `patience` checks without improvement and keeps the best parameters."""
    opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_at, rng = torch.optim.lr_scheduler.LambdaLR(opt, schedule(cfg)), random.Random(cfg.seed)
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
                                for chunk in batches(held, cfg.batch_pairs)])
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

def bootstrap_interval(x, n_boot=2000, seed=0):
    """95% percentile-bootstrap interval of the mean of x."""
    x = np.asarray(x, dtype=float)
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def sign_report(steer, sources, margins):
    """Which end of the axis is honest, with its uncertainty. sources: {name: probes}; margins(probes) → [n]
    each probe's margin toward its honest answer under the current steering (harness.probe_margins: the
    evaluation's Yes/No log-ratio). Per probe g = margin(+1) − margin(−1); the sign is that of the mean of g
    over all probes pooled; `agree`: every source's mean points the same way; `certain`: the pooled
    bootstrap interval excludes 0."""
    sources = sources if isinstance(sources, dict) else {"probes": sources}
    gaps = {}
    for name, probes in sources.items():
        with steer(1.0):
            plus = margins(probes)
        with steer(-1.0):
            gaps[name] = plus - margins(probes)
    pooled = np.concatenate(list(gaps.values()))
    interval = bootstrap_interval(pooled)
    report = {name: {"gap": float(g.mean()), "ci": bootstrap_interval(g), "n": len(g)} for name, g in gaps.items()}
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

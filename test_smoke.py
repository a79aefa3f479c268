"""Smoke tests on a tiny random Qwen3 built in-process (no downloads, no files).

The model is `Qwen3ForCausalLM(Qwen3Config(...))` with a few layers and a ByteLevel
BPE tokenizer trained here on a few sentences, with ChatML special tokens and a
ChatML chat template, so every code path (chat templates, left padding, Yes/No
token scans, hooks, training, saving) runs exactly as on a real model, in seconds.
The last section builds tiny Llama, Qwen2, Mistral, Gemma2/3, Phi3 and GPT-NeoX models the same way.

Run: python -m pytest -q test_smoke.py
"""
import ast
import contextlib
import copy
import csv
import importlib.util
import inspect
import json
import math
import random
import re
import subprocess
import sys
import textwrap
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

import baselines
import bench
import dilemmas
import eval_dilemmas as ev
import harness
import innerpissa as ip
import planted
import samples
from cached_step import CachedPairRunner
from harness import run_cli
from harness import yes_no_prompt
from innerpissa import InnerPiSSA, InputError, default_target, find_linears, load_artifact, make_pairs, persona, tokenize

# The tiny model's ops are all overhead: one thread is fastest and immune to a busy machine.
torch.set_num_threads(1)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Pretend you are an honest person making statements about the world.",
    "Pretend you are a dishonest person making statements about the world.",
    "Answer with My choice: Yes or My choice: No. My choice: Yes. My choice: No.",
    "yes no Yes No YES NO. Should you tell the truth? Would you lie to a friend?",
    "The capital of France is Paris. I think that the best way to learn is to practise.",
    "Once upon a time, a small robot wanted to see the sea. # This function returns the sum.",
]


def make_tokenizer():
    """A ByteLevel BPE tokenizer with ChatML tokens, trained in a few milliseconds."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(CORPUS * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    tok.chat_template = CHATML
    return tok


def make_model(vocab_size, seed=0, layers=4):
    """A 4-block Qwen3 with d_model = 64; random weights, seeded."""
    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    model = Qwen3ForCausalLM(cfg).eval()
    model.config.name_or_path = "tiny-qwen3"
    return model


# The same builders as source, for a script run in another directory (the copy-alone test).
TINY_SOURCE = "\n".join([
    "import torch",
    "from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers",
    "from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM",
    f"CHATML = {CHATML!r}", f"CORPUS = {CORPUS!r}",
    inspect.getsource(make_tokenizer), inspect.getsource(make_model)]) + "\n"


@pytest.fixture(scope="session")
def _tiny():
    tok = make_tokenizer()
    return make_model(len(tok)), tok


@pytest.fixture
def tiny(_tiny):
    """(model, tokenizer): a fresh deep copy per test, so tests cannot leak hooks or edits."""
    model, tok = _tiny
    return copy.deepcopy(model), tok


# ----------------------------------------------------------------------------- innerpissa.py


TEXTS = ["Pretend you are an honest person.", "The capital of France is", "yes no"]


def logits(model, tok, texts=TEXTS):
    with torch.no_grad():
        return model(**ip.tokenize(tok, texts)).logits


def trained_adapter(model, rank=8, rotate_u=False, seed=0, scaling=None, objective=ip.OBJECTIVE):
    """An adapter with visibly non-zero θ, λ (as after training), so every test exercises them."""
    torch.manual_seed(seed)
    adapter = ip.InnerPiSSA.attach(model, rank=rank, rotate_u=rotate_u, scaling=scaling, objective=objective)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.3)
    return adapter


def hook_ids(model):
    """Every forward hook on every module. transformers adds inert hooks of its own the first time
    output_hidden_states is used, so tests compare snapshots rather than expect none."""
    return {(name, key) for name, m in model.named_modules() for key in m._forward_hooks}


def test_c0_is_bitwise_base_model(tiny):
    model, tok = tiny
    base = logits(model, tok)
    adapter = trained_adapter(model, rotate_u=True)
    with adapter.steer(0.0):
        assert torch.equal(logits(model, tok), base)
    with adapter.steer(1.0):
        assert not torch.allclose(logits(model, tok), base, atol=1e-3)


def test_detach_restores_model_bitwise(tiny):
    model, tok = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    base, hooks = logits(model, tok), hook_ids(model)
    adapter = trained_adapter(model)
    with adapter.steer(1.0):
        logits(model, tok)
    adapter.detach()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert set(model.state_dict()) == set(state)
    assert hook_ids(model) == hooks
    assert torch.equal(logits(model, tok), base)


def test_steer_restores_previous_coefficient_on_exception(tiny):
    model, _ = tiny
    adapter = trained_adapter(model)
    with adapter.steer(0.5):
        with pytest.raises(RuntimeError):
            with adapter.steer(2.0):
                assert adapter.c == 2.0
                raise RuntimeError("boom")
        assert adapter.c == 0.5
    assert adapter.c == 0.0


@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
def test_cayley_rotation_is_orthogonal_and_inverts_with_minus_c(c):
    torch.manual_seed(1)
    theta = torch.randn(16, 16)
    r, r_inv = ip.cayley(theta, c), ip.cayley(theta, -c)
    eye = torch.eye(16)
    assert torch.allclose(r @ r.T, eye, atol=1e-5)
    assert torch.allclose(r @ r_inv, eye, atol=1e-5)
    assert torch.equal(ip.cayley(theta, 0.0), eye)
    assert not torch.allclose(r, eye, atol=1e-2)


def test_scaled_singular_values_multiply_back_to_s_squared(tiny):
    model, _ = tiny
    layer = trained_adapter(model, scaling="exp").layers[0]
    s_plus, s_minus = layer.scaled_s(1.7), layer.scaled_s(-1.7)
    assert torch.allclose(s_plus * s_minus, layer.S ** 2, rtol=1e-5)
    assert not torch.allclose(s_plus, layer.S, rtol=1e-2) and torch.equal(layer.scaled_s(0.0), layer.S)


def test_attach_defaults_are_the_cli_recipe(tiny):
    """InnerPiSSA.attach and `python innerpissa.py` bound the rotation alike (both the authors' π/4, entrywise)."""
    model, _ = tiny
    cli = harness.parse_args(["--out", "x.safetensors"])
    adapter = ip.InnerPiSSA.attach(model)
    assert adapter.max_angle == cli.max_angle == math.pi / 4 and adapter.rank == cli.rank and adapter.rotate_u == cli.rotate_u
    assert all(layer.max_angle == math.pi / 4 and layer.bound == cli.bound == "elementwise" for layer in adapter.layers)


def test_top_svd_reconstructs_weight_at_full_rank(tiny):
    model, _ = tiny
    weight = model.model.layers[1].mlp.down_proj.weight                  # [64, 128]
    u, s, v = ip.top_svd(weight, 64)
    assert torch.allclose(u @ torch.diag(s) @ v.T, weight, atol=1e-5)


@pytest.mark.parametrize("shape, full", [((6, 9), True), ((9, 6), True), ((6, 9), False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_svd_is_a_singular_value_decomposition_in_the_input_dtype(shape, full, dtype):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    u, s, vh = ip.svd(x, full_matrices=full)
    k = min(shape)
    assert u.dtype == s.dtype == vh.dtype == dtype
    assert u.shape == (shape[0], shape[0] if full else k) and vh.shape == (shape[1] if full else k, shape[1])
    assert torch.allclose((u[:, :k] * s) @ vh[:k], x, atol=1e-5)
    assert torch.allclose(u.T @ u, torch.eye(u.shape[1], dtype=dtype), atol=1e-5)
    assert torch.allclose(vh @ vh.T, torch.eye(vh.shape[0], dtype=dtype), atol=1e-5)
    assert torch.all(s[:-1] >= s[1:]) and torch.allclose(s, torch.linalg.svdvals(x), atol=1e-5)


@pytest.mark.parametrize("rotate_u", [False, True])
def test_merge_reproduces_hooked_output(tiny, rotate_u):
    model, tok = tiny
    fresh = copy.deepcopy(model)
    adapter = trained_adapter(model, rotate_u=rotate_u)
    with adapter.steer(1.5):
        hooked = logits(model, tok)
    merged = adapter.merge(1.5)
    assert set(merged) <= set(fresh.state_dict())
    fresh.load_state_dict(merged, strict=False)
    assert torch.allclose(logits(fresh, tok), hooked, atol=1e-4)
    assert not torch.allclose(logits(model, tok), hooked, atol=1e-3)    # c back to 0


def test_set_sign_minus_one_is_exactly_c_to_minus_c(tiny):
    model, tok = tiny
    adapter = trained_adapter(model, rotate_u=True)
    with adapter.steer(-1.0):
        before = logits(model, tok)
    adapter.set_sign(-1)
    with adapter.steer(1.0):
        after = logits(model, tok)
    assert adapter.sign == -1
    assert torch.allclose(after, before, atol=1e-5)


def test_save_load_reproduces_outputs(tiny, tmp_path):
    model, tok = tiny
    fresh = copy.deepcopy(model)
    adapter = trained_adapter(model, rotate_u=True)
    adapter.set_sign(-1)
    with adapter.steer(1.0):
        expected = logits(model, tok)
    adapter.save(tmp_path / "a.safetensors")
    loaded = ip.InnerPiSSA.load(fresh, tmp_path / "a.safetensors")
    assert loaded.sign == -1 and loaded.rotate_u and loaded.rank == 8
    with loaded.steer(1.0):
        assert torch.allclose(logits(fresh, tok), expected, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]   # no temp file left behind


def test_load_onto_a_different_model_fails_cleanly(tiny, tmp_path):
    model, tok = tiny
    trained_adapter(model).save(tmp_path / "a.safetensors")
    other = make_model(len(tok), seed=1)                                # same shapes, other weights
    with pytest.raises(ip.InputError, match="differ"):
        ip.InnerPiSSA.load(other, tmp_path / "a.safetensors")
    assert hook_ids(other) == set()
    shallow = make_model(len(tok), layers=1)                           # lacks the saved layers
    with pytest.raises(ip.InputError, match="other layers or shapes"):
        ip.InnerPiSSA.load(shallow, tmp_path / "a.safetensors")


def test_hook_respects_host_dtype(tiny):
    model, tok = tiny
    model = model.to(torch.bfloat16)
    adapter = trained_adapter(model)
    with adapter.steer(1.0):
        out = logits(model, tok)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert adapter.layers[0].U.dtype == torch.float32


def test_pairs_differ_only_in_persona_and_are_seeded(tiny):
    _, tok = tiny
    pairs = ip.make_pairs(tok, n=20, seed=3)
    assert len(pairs) == 20 and pairs == ip.make_pairs(tok, n=20, seed=3)
    assert pairs != ip.make_pairs(tok, n=20, seed=4)
    for pos, neg in pairs:
        assert pos.replace("an honest", "a dishonest") == neg
    assert len(harness.read_lines(ip.DATA_DIR / "suffixes.txt")) >= 150


def test_training_separates_plus_from_minus(tiny):
    model, tok = tiny
    torch.manual_seed(0)
    adapter = ip.InnerPiSSA.attach(model, rank=8, max_angle=None, objective="readout")
    pairs = ip.make_pairs(tok, n=60)
    only = dict(objective="readout", schedule="cosine", lr=5e-2, batch_pairs=8, mono_weight=0.0, even_weight=0.0, coherence_weight=0.0)  # the separation term
    before = ip.train(model, tok, adapter, pairs, ip.TrainConfig(steps=1, **only), progress=False)["heldout"]
    cfg = ip.TrainConfig(steps=12, **only)
    after = ip.train(model, tok, adapter, pairs, cfg, progress=False)["heldout"]
    before, after = before["delta"], after["delta"]
    assert after[1.0] - after[-1.0] > 3 * (before[1.0] - before[-1.0]) > 0
    assert after[1.0] > after[0.0] > after[-1.0]
    assert all(p.requires_grad for p in model.parameters())            # training restores the flags


def test_even_penalty_raises_the_odd_share_of_the_readout_change(tiny):
    """The same 12 steps with and without the even penalty (monotonic hinge off in both)."""
    base, tok = tiny
    pairs, shares = ip.make_pairs(tok, n=60), {}
    for weight in (0.0, 10.0):
        model = copy.deepcopy(base)
        torch.manual_seed(0)
        adapter = ip.InnerPiSSA.attach(model, rank=8, max_angle=None, objective="readout")
        cfg = ip.TrainConfig(objective="readout", steps=12, lr=5e-2, batch_pairs=8, mono_weight=0.0, even_weight=weight)
        shares[weight] = ip.train(model, tok, adapter, pairs, cfg, progress=False)["heldout"]["odd_share_readout"]
    assert shares[10.0] > shares[0.0] + 0.1, shares


def assert_cached_step_equals_plain(model, tok, adapter, objective, layer, dtype=torch.float64, tol=1e-5, pairs=None,
                                    **fields):
    """Loss and every gradient of one training step, shared starts cached (rows packed without padding)
    vs every full row run left-padded, in float64 unless told, so that only a difference in what is computed
    could exceed the tolerance. Persona pairs unless `pairs` are given; `fields` set on the TrainConfig."""
    model.to(dtype).requires_grad_(False)
    adapter.to(dtype)
    pairs, results = pairs or ip.make_pairs(tok, n=12), []
    cfg = ip.resolve(ip.TrainConfig(objective=objective, batch_pairs=4, micro_pairs=4, layer=layer, **fields), model)
    space = ip.OBJECTIVES[objective].space(model, ip.PairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n),
                                           pairs, cfg, 4)   # one space: on a 64-wide model the write space is all
    for runner_type in (ip.PairRunner, CachedPairRunner):   # of it and the ∩ picks any basis of taskdiff
        runner = runner_type(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
        assert runner.cached == (runner_type is CachedPairRunner)
        adapter.zero_grad()
        loss, _, _ = ip.step_loss(runner, space, pairs[:4], cfg, progress=0.5)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in adapter.parameters()]))
    (loss_plain, grads_plain), (loss_cached, grads_cached) = results
    assert torch.allclose(loss_cached, loss_plain, rtol=1e-5, atol=0) and loss_plain.abs() > 0
    for g_plain, g_cached in zip(grads_plain, grads_cached):
        assert g_plain.abs().max() > 0
        assert (g_cached - g_plain).norm() <= tol * g_plain.norm() + 1e-9


@pytest.mark.parametrize("objective", ["readout", "antipasto"])
def test_cached_step_equals_the_plain_step(tiny, objective):
    model, tok = tiny
    assert_cached_step_equals_plain(model, tok, trained_adapter(model, rank=4, objective=objective), objective, 2)


@pytest.mark.parametrize("reference", ["batch", "pair"])
def test_cached_step_equals_the_plain_step_with_the_shift_term(tiny, reference):
    model, tok = tiny
    answers = dict(pairs=answer_like_pairs(tok), window="reply") if reference == "pair" else {}   # as it is meant for
    assert_cached_step_equals_plain(model, tok, trained_adapter(model, rank=4), "antipasto", 2, shift_weight=30.0,
                                    shift_reference=reference, **answers)


LONG_ANSWERS = (" Yes, I would give it back to them.", " No, I would keep it for myself.")   # several tokens each


def answer_like_pairs(tok, n=12, answers=(" Yes", " No")):
    """Pairs shaped like dilemmas.answer_pairs: one Yes/No prompt per pair (of three lengths) answered two
    ways, so the two rows share all but their last tokens and pairs share only the chat's start."""
    questions = [f"Question {i}: is it right to keep " + "the money you found " * (1 + i % 3) for i in range(n)]
    return [(harness.yes_no_prompt(tok, q) + answers[0], harness.yes_no_prompt(tok, q) + answers[1]) for q in questions]


def test_reply_windows_of_pairs_answered_in_several_tokens_read_every_answer_token(tiny):
    """One prompt answered two ways in a sentence each: each row's reply window runs from the first token where the
    rows differ to its own end (at first the common tail less the persona chats' shared tail, here only the last
    prediction; then the shorter answer's length from each row's end, which missed the longer answer's first
    tokens, its Yes/No word among them). The output gap is then the mean NLL of the negative
    row's answer minus the positive row's, each over its own tokens, as a forward of each row alone gives it.
    Persona pairs keep their shared reply (test_output_gap_reads_exactly_the_shared_reply)."""
    model, tok = tiny
    pairs = answer_like_pairs(tok, 4, LONG_ANSWERS)
    lengths = ip.suffix_lengths(tok, pairs)
    assert all(isinstance(n, tuple) for n in lengths)                      # the two answers differ in length here
    with torch.no_grad():
        p = ip.PairRunner(model, tok, None, pairs, 2, 3).run(pairs, 0.0, lengths)
        gap = ip.output_gap(p, p.per_position(ip.next_token_nll(p.logits, p.targets)))
    for i, (pos, neg) in enumerate(pairs):
        rows = [ip.token_ids(tok, pos), ip.token_ids(tok, neg)]
        start = ip.common_prefix(rows)
        mean_nll = []
        for side, row in enumerate(rows):
            assert ip.window_of(lengths, 2 * i + side) == len(row) - start > 3
            assert p.per_position(p.targets)[p.rows == 2 * i + side].tolist() == row[start:]   # the whole answer
            with torch.no_grad():
                logp = model(torch.tensor([row])).logits[0, :-1].log_softmax(-1)          # this row alone
            mean_nll.append(-logp[torch.arange(start - 1, len(row) - 1), torch.tensor(row[start:])].mean())
        assert abs(float(gap[i]) - float(mean_nll[1] - mean_nll[0])) < 1e-4
        assert [tok.decode(row[start:]).split(",")[0].strip() for row in rows] == ["Yes", "No"]  # both words read


@pytest.mark.parametrize("window, answers", [("row", (" Yes", " No")), ("reply", (" Yes", " No")),
                                             ("reply", LONG_ANSWERS)])
def test_cached_step_equals_the_plain_step_on_pairs_that_share_their_own_start(tiny, window, answers):
    """Answer pairs: each pair's shared prompt runs once for both rows (the prompts packed in one row, then
    rows [pairs, W]), with the same loss and gradients as the plain step, for whole-row and reply windows (also
    answers of several tokens and two lengths, whose reply window reaches back into the shared prompt by one
    prediction); and fewer token positions through the blocks than the plain step."""
    model, tok = tiny
    pairs = answer_like_pairs(tok, answers=answers)
    runner = CachedPairRunner(model, tok, None, pairs, 2, 3)
    assert runner.cached and runner.per_pair
    assert not CachedPairRunner(model, tok, None, ip.make_pairs(tok, n=12), 2, 3).per_pair
    cfg = ip.resolve(ip.TrainConfig(batch_pairs=4, micro_pairs=4), model)
    plain = ip.PairRunner(model, tok, None, pairs, 2, 3)
    assert bench.block_tokens(runner, pairs[:4], cfg) < 0.75 * bench.block_tokens(plain, pairs[:4], cfg)
    windows = ip.row_windows(tok, pairs[:4])                               # min(len) − 1: a whole row when
    p = runner.run(pairs[:4], 0.0, windows)                                # the two have one length
    for r in range(8):                                                     # the windows reach into the starts
        row = ip.token_ids(tok, pairs[r // 2][r % 2])
        assert p.per_position(p.targets)[p.rows == r].tolist() == row[len(row) - windows[r // 2]:]
    assert_cached_step_equals_plain(model, tok, trained_adapter(model, rank=4), "antipasto", 2, pairs=pairs,
                                    window=window)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="VmHWM reset is Linux-only")
def test_bench_peak_memory_is_the_peak_since_its_reset():
    bench.peak_memory(reset=True)
    start = bench.peak_memory()                                        # about the resident memory now
    block = np.ones(2**26)                                             # 0.5 GiB, touched
    high = bench.peak_memory()
    del block
    assert high >= start + 0.45
    assert bench.peak_memory(reset=True) >= high - 0.01                # the reading before the reset, kept
    assert bench.peak_memory() < high - 0.4 and max(bench.PEAKS) >= high - 0.01


def test_bench_times_both_steps_and_counts_fewer_block_tokens_cached(tiny):
    """bench.train_speed on the tiny model: both steps timed, and the cached one sends fewer token positions
    through the blocks (its persona chats run once per coefficient, not once per row)."""
    model, tok = tiny
    adapter = ip.InnerPiSSA.attach(model, rank=4)
    cached, plain, tokens_ratio = bench.train_speed(model, tok, adapter, "antipasto", steps=1)
    assert cached > 0 and plain > 0 and tokens_ratio > 1
    cached, plain, tokens_ratio = bench.train_speed(model, tok, adapter, "antipasto", steps=1,
                                                    pairs=answer_like_pairs(tok, 24), window="reply")
    assert cached > 0 and plain > 0 and tokens_ratio > 1.5                 # each pair's prompt runs once, not twice


def test_train_leaves_the_callers_config_and_the_odd_share_is_per_token(tiny):
    model, tok = tiny
    cfg = ip.TrainConfig(steps=1, batch_pairs=4, direction_pairs=8)
    adapter = ip.InnerPiSSA.attach(model, rank=4)
    ip.train(model, tok, adapter, ip.make_pairs(tok, n=12), cfg, progress=False)
    assert cfg.layer is None and cfg.lr is None                         # resolved on a copy
    plus, minus = torch.tensor([[[3.0], [9.0]]]), torch.tensor([[[-3.0], [1.0]]])   # odd 3, 4; even 0, 5
    assert ip.odd_share(plus, minus, torch.zeros(1, 2, 1)) == pytest.approx(3.5 / 6)  # per token, not per row (0.5)


def test_epochs_set_the_steps_and_patience_stops_a_run_that_cannot_improve(tiny):
    model, tok = tiny
    adapter, pairs = ip.InnerPiSSA.attach(model, rank=4), ip.make_pairs(tok, n=12)        # 3 held out, 9 train
    stats = ip.train(model, tok, adapter, pairs, ip.TrainConfig(epochs=1, batch_pairs=4, direction_pairs=8),
                     progress=False)
    assert stats["steps"] == 3 and stats["pair_examples"] == 12                         # ⌈9 / 4⌉ steps
    for bad, named in ((dict(epochs=0), "epochs"), (dict(steps=0), "steps"), (dict(steps=3, patience=0), "patience")):
        with pytest.raises(ip.InputError, match=f"^--{named} 0 must be"):
            ip.train(model, tok, adapter, pairs, ip.TrainConfig(batch_pairs=4, **bad), progress=False)
        assert all(p.requires_grad for p in model.parameters())             # refused before touching the model
    frozen = ip.TrainConfig(steps=10, lr=0.0, patience=1, check_every=1, batch_pairs=4, direction_pairs=8)
    assert ip.train(model, tok, adapter, pairs, frozen, progress=False)["steps"] == 2    # no better at check 2


def fake_pass(h, logits, rows=None):
    rows = torch.tensor([0, 1]) if rows is None else rows
    return ip.Pass(h, logits, torch.zeros(len(rows), dtype=torch.long), rows)


def test_antiparallel_loss_is_scale_free_and_symmetric_in_the_honest_sign():
    """The projection term of antipasto_loss alone (TV barrier inside its threshold, hinge weight 0)."""
    torch.manual_seed(0)
    p, d, basis = 6, 8, torch.linalg.qr(torch.randn(8, 4))[0]
    cfg = ip.TrainConfig(objective="antipasto", mono_weight=0.0)
    rows = torch.arange(2 * p)
    h0, move = torch.randn(2 * p, 3, d), torch.randn(2 * p, 3, d)
    logits = torch.zeros(2 * p, 5)                                     # the same distribution at every c

    def loss(plus, minus):
        out = {1.0: fake_pass(h0 + plus, logits, rows), -1.0: fake_pass(h0 + minus, logits, rows)}
        return ip.antipasto_loss(ip.Space(basis, basis[0]), fake_pass(h0, logits, rows), out, [1] * p, cfg, 0.5)[0]
    base = loss(move, -move)
    assert torch.allclose(loss(10 * move, -10 * move), base, atol=1e-5)      # scale-free in δ±
    assert torch.allclose(loss(-move, move), base, atol=1e-5)                # either sign may be the honest one
    assert base < 0 < loss(move, move)                                      # opposite moves win, alike ones lose


def test_projection_term_ignores_a_shift_both_rows_of_a_pair_share():
    """s_c reads h_pos − h_neg, so a change that adds one vector to both rows of a pair (an additive steering
    direction) leaves the projection term at zero with no gradient: the objective can only learn to change
    what the pair's two prompts do differently (docs/controls.md, the planted model's gating)."""
    torch.manual_seed(0)
    p, d, basis = 6, 8, torch.linalg.qr(torch.randn(8, 4))[0]
    cfg, rows = ip.TrainConfig(objective="antipasto", mono_weight=0.0), torch.arange(2 * p)
    h0, logits = torch.randn(2 * p, 3, d), torch.zeros(2 * p, 5)          # the same distribution at every c

    def loss(change):                                                     # change [2p, 3, d]: +change at +1, −change at −1
        out = {1.0: fake_pass(h0 + change, logits, rows), -1.0: fake_pass(h0 - change, logits, rows)}
        return ip.antipasto_loss(ip.Space(basis, basis[0]), fake_pass(h0, logits, rows), out, [1] * p, cfg, 0.5)[0]
    shift = (10 * torch.randn(p, 3, d)).requires_grad_()                  # one vector per pair, per token
    honest_only = (10 * torch.randn(p, 3, d)).requires_grad_()
    shared_loss = loss(shift.repeat_interleave(2, 0))                      # rows 2i and 2i+1 alike
    honest_loss = loss(torch.stack([honest_only, torch.zeros_like(honest_only)], 1).flatten(0, 1))
    shared_loss.backward(), honest_loss.backward()
    assert abs(shared_loss.item()) < 1e-3 and shift.grad.norm() == 0    # float32 rounding of (a + s) − (b + s)
    assert abs(honest_loss.item()) > 1 and honest_only.grad.norm() > 1e-2


def loss_of_a_shared_change(h0, change, **fields):
    """antipasto_loss (hinge off, a random 4-wide B) with `change` added to every row at +1 and taken away at −1;
    h0 [2p, 3, d] the reference rows, pairs adjacent. (loss, logs)."""
    torch.manual_seed(1)
    basis, rows, logits = torch.linalg.qr(torch.randn(h0.shape[-1], 4))[0], torch.arange(len(h0)), torch.zeros(len(h0), 5)
    cfg = ip.TrainConfig(objective="antipasto", mono_weight=0.0, **fields)
    out = {1.0: fake_pass(h0 + change, logits, rows), -1.0: fake_pass(h0 - change, logits, rows)}
    return ip.antipasto_loss(ip.Space(basis, basis[0]), fake_pass(h0, logits, rows), out, [1] * (len(h0) // 2), cfg, 0.5)


def test_shift_term_sees_the_shift_both_rows_share_and_is_off_by_default():
    """Our shared-shift term (shift_weight > 0) reads the change both rows of a pair share along the mean
    reference difference d̄: moving both rows along +d̄ at +1 and −d̄ at −1 lowers the loss, the mirror raises
    it, and its gradient reaches the shared change; at the default weight 0 the loss is the authors'."""
    torch.manual_seed(0)
    p, d = 6, 8
    h0 = torch.randn(2 * p, 3, d)
    mean_diff = (h0[0::2] - h0[1::2]).mean((0, 1))                        # d̄ [d]

    def loss(change, **kw):
        return loss_of_a_shared_change(h0, change, **kw)
    shift = mean_diff.expand(2 * p, 3, d).clone().requires_grad_()
    toward, logs = loss(shift, shift_weight=30.0)
    toward.backward()
    assert logs["shift+"] == pytest.approx(1.0, abs=1e-5) and logs["shift-"] == pytest.approx(-1.0, abs=1e-5)
    assert toward < loss(0 * shift, shift_weight=30.0)[0] < loss(-shift, shift_weight=30.0)[0]
    assert shift.grad.norm() > 1e-3                                        # the authors' terms give it none
    authors = loss(shift.detach())
    assert "shift+" not in authors[1] and torch.equal(authors[0], loss(shift.detach(), shift_weight=0.0)[0])
    with pytest.raises(ip.InputError, match="--shift-weight"):
        ip.resolve(ip.TrainConfig(objective="readout", shift_weight=1.0), None)


def test_shift_term_with_pair_references_reads_each_pair_its_own_honest_way_and_not_a_yes_bias():
    """Half the pairs' honest rows sit at +v/2 from their shared point, half at −v/2 (Yes-honest and No-honest
    answers, say), so the batch's mean difference d̄ is 0 and the batch reference has nothing to read along. With
    each pair's own reference, moving every pair's shared point its honest way at +1 (the other at −1) reads
    a₊ = +1, a₋ = −1, and moving every row along +v at +1 (a yes-bias) reads 0."""
    torch.manual_seed(0)
    p, d = 6, 8
    v = torch.randn(d)
    honest_side = torch.tensor([1.0, -1.0]).repeat(p // 2)[:, None, None]   # [p, 1, 1]: +1, −1, +1, …
    centre = torch.randn(p, 3, d)
    h0 = torch.stack([centre + honest_side * v / 2, centre - honest_side * v / 2], 1).flatten(0, 1)   # [2p, 3, d]

    def logs(change):
        return loss_of_a_shared_change(h0, change, shift_weight=30.0, shift_reference="pair")[1]
    honest = logs((honest_side * v).repeat_interleave(2, 0).expand(2 * p, 3, d))
    assert honest["shift+"] == pytest.approx(1.0, abs=1e-5) and honest["shift-"] == pytest.approx(-1.0, abs=1e-5)
    yes_bias = logs(v.expand(2 * p, 3, d))
    assert abs(yes_bias["shift+"]) < 1e-5 and abs(yes_bias["shift-"]) < 1e-5
    with pytest.raises(ip.InputError, match="--shift-reference"):
        ip.resolve(ip.TrainConfig(shift_reference="mean"), None)


@pytest.mark.parametrize("field, value", [("lr", -1.0), ("batch_pairs", 0), ("micro_pairs", 0), ("micro_pairs", -7),
                                          ("warmup", 1.0), ("clip", -1.0), ("mono_weight", -1.0),
                                          ("coherence_weight", -1.0), ("direction_pairs", 0), ("kl_tau", -0.1)])
def test_training_settings_out_of_range_are_refused_naming_the_flag(field, value):
    """Before, these trained silently (clip −1 reversed every gradient: torch scales them by −1/‖g‖; micro-pairs 0
    meant the whole batch; a negative TV weight rewarded incoherence) or failed deep inside torch (lr −1, batch 0).
    lr = 0 stays allowed: a run that cannot improve (test_epochs_set_the_steps_and_patience_stops_…)."""
    with pytest.raises(ip.InputError, match=f"^--{field.replace('_', '-')} {value} must be"):
        ip.resolve(ip.TrainConfig(**{field: value}), None)


def test_a_rotation_bound_of_zero_or_less_is_refused(tiny):
    model, _ = tiny
    for angle in (0.0, -1.0):
        with pytest.raises(ip.InputError, match="--max-angle"):
            ip.InnerPiSSA.attach(model, rank=4, max_angle=angle)
    assert not any(m._forward_hooks for m in model.modules())             # nothing hooked before the refusal


def test_antipasto_ablation_switches_change_only_their_part():
    """coherence_weight 0 drops the TV barrier (and only it), proj_weight 0 the projection term (and only it);
    reference "mean" equals "pair" when every pair has the same s_0 and differs otherwise; a set mono_margin
    replaces the entropy-scaled one."""
    torch.manual_seed(0)
    p, d, basis = 4, 8, torch.linalg.qr(torch.randn(8, 4))[0]
    rows, move = torch.arange(2 * p), torch.randn(2 * p, 3, d)
    logits0, logits1 = (torch.tensor([[0, 6.0, 0, 0, 0]]).repeat(2 * p, 1),     # sure of token 1 at c = 0 (τ ≈ 0.3),
                        torch.tensor([[6.0, 0, 0, 0, 0]]).repeat(2 * p, 1))     # of token 0 at ±1: TV ≈ 0.99

    def loss(h0, **kw):
        cfg = ip.TrainConfig(objective="antipasto", mono_weight=30.0, **kw)
        out = {1.0: fake_pass(h0 + move, logits1, rows), -1.0: fake_pass(h0 - move, logits1, rows)}
        return ip.antipasto_loss(ip.Space(basis, basis[0]), fake_pass(h0, logits0, rows), out, [1] * p, cfg, 0.5)
    h0 = torch.randn(2 * p, 3, d)
    (full, logs), (no_tv, logs_off) = loss(h0), loss(h0, coherence_weight=0.0)
    assert logs["coh"] > 0 and logs_off["coh"] == 0 and torch.allclose(full - no_tv, torch.tensor(logs["coh"]))
    no_proj, logs_np = loss(h0, proj_weight=0.0)
    assert logs["proj"] != 0 and logs_np == logs and torch.allclose(full - no_proj, torch.tensor(logs["proj"]))
    same = h0.clone()
    same[0::2] = same[1::2] + torch.randn(1, 3, d)                         # one honest − dishonest difference for all
    assert torch.allclose(loss(same)[0], loss(same, reference="mean")[0], atol=1e-5)
    assert not torch.allclose(loss(h0)[0], loss(h0, reference="mean")[0], atol=1e-3)
    assert loss(h0, mono_margin=0.0)[1]["mono"] == 0 < loss(h0, mono_margin=100.0)[1]["mono"]


def test_fixed_hinge_orientation_asks_plus_one_for_the_positive_side_where_the_authors_take_either():
    """A change the other way round (δ₊ = −1, δ₋ = +1, past θ = 0.5) satisfies the authors' hinge (either orientation,
    the smaller) and costs the fixed one 2·(θ + 1) per pair; the same change turned round costs it nothing."""
    cfg = ip.TrainConfig(mono_margin=0.5)
    mirrored, honest = {1.0: torch.tensor([-1.0, -1.0]), -1.0: torch.tensor([1.0, 1.0])}, {1.0: torch.ones(2), -1.0: -torch.ones(2)}
    assert ip.hinge(mirrored, None, None, None, cfg).item() == 0 == ip.hinge(honest, None, None, None, cfg).item()
    fixed = replace(cfg, **ip.deviations(["fixed-orientation"])[1])
    assert ip.hinge(mirrored, None, None, None, fixed).item() == 3.0 and ip.hinge(honest, None, None, None, fixed).item() == 0


def test_tv_barrier_and_hinge_are_zero_with_zero_gradient_inside_their_thresholds():
    p_ref = torch.tensor([[0.5, 0.3, 0.2]])
    p = torch.tensor([[0.45, 0.35, 0.2]], requires_grad=True)              # TV 0.05 < τ 0.1
    barrier = ip.tv_barrier(p, p_ref, torch.tensor([0.1]), 10.0).sum()
    barrier.backward()
    assert barrier.item() == 0 and p.grad.abs().max() == 0
    assert ip.tv_barrier(torch.tensor([[0.9, 0.05, 0.05]]), p_ref, torch.tensor([0.1]), 10.0).item() > 0
    d_plus, d_minus = torch.tensor([0.6], requires_grad=True), torch.tensor([-0.7], requires_grad=True)
    hinge = ip.monotonic_hinge(d_plus, d_minus, torch.tensor(0.5))
    hinge.backward()
    assert hinge.item() == 0 and d_plus.grad.abs().max() == 0 and d_minus.grad.abs().max() == 0


def test_data_aware_selection_picks_the_planted_directions(tiny):
    """A Linear whose output basis has 3 singular directions aligned with what separates honest from
    dishonest inputs (planted, with small singular values) gets those 3 among its chosen r = 3."""
    model, tok = tiny
    pairs = ip.make_pairs(tok, n=16)
    blocks = ip.decoder_layers(model)
    name = "model.layers.1.self_attn.o_proj"
    found = []
    hook = blocks[1].register_forward_pre_hook(
        lambda m, a, kw: found.append((a[0] if a else kw["hidden_states"])[:, -1]), with_kwargs=True)
    with torch.no_grad():
        for chunk in ip.batches(pairs, 8):
            model(**ip.tokenize(tok, ip.interleave(chunk)))
    hook.remove()
    h = torch.cat(found)
    diff = (h[0::2] - h[1::2]).mean(0)                                   # [64] what separates the personas
    q = torch.linalg.qr(torch.cat([diff[:, None], torch.randn(64, 63)], 1))[0]   # q[:, 0] ∥ diff
    planted = [0, 1, 2]
    s = torch.linspace(5.0, 1.0, 64)
    s[planted] = torch.tensor([0.5, 0.4, 0.3])                           # the smallest: never in a top-3 by S
    with torch.no_grad():
        model.get_submodule(name).weight.copy_((q * s) @ torch.linalg.qr(torch.randn(64, 64))[0].T)
    adapter = ip.InnerPiSSA.attach(model, target=name + "$", rank=3)
    for runner_type in (CachedPairRunner, ip.PairRunner):       # rows packed after the chats, or full
        ip.select_directions(runner_type(model, tok, adapter, pairs, 2, 3), adapter, pairs, 3)
        u = adapter.layers[0].U                                          # [64, 3] the chosen left vectors
        assert (u.T @ q[:, 0]).abs().max() > 0.99                        # the separating direction is chosen
        assert set(adapter.layers[0].index.tolist()) != {0, 1, 2}        # not simply the top three


def test_data_aware_selection_refuses_a_module_that_reads_the_residual(tiny):
    """q_proj has a d_model-wide output but it is not in the residual stream: choosing its directions by
    h·u_i would compare unrelated coordinates, so the choice is refused with the fix named."""
    model, tok = tiny
    pairs = ip.make_pairs(tok, n=4)
    adapter = ip.InnerPiSSA.attach(model, target=r"layers\.1\.self_attn\.q_proj$", rank=3)
    with pytest.raises(ip.InputError, match="--top-directions"):
        ip.select_directions(ip.PairRunner(model, tok, adapter, pairs, 2, 3), adapter, pairs, 3)


def test_innerpissa_py_alone_attaches_trains_steers_saves_loads(tmp_path):
    """innerpissa.py copied into an empty directory: with a model and pairs it builds itself; with cached_step.py
    beside it, the cached step trains too."""
    import shutil
    shutil.copy(Path(ip.__file__), tmp_path / "innerpissa.py")
    shutil.copy(Path(ip.__file__).with_name("cached_step.py"), tmp_path / "cached_step.py")
    script = tmp_path / "use.py"
    script.write_text(TINY_SOURCE + textwrap.dedent("""
        import torch, innerpissa as ip
        assert not hasattr(ip, "load_model")
        tok = make_tokenizer(); model = make_model(len(tok))
        pairs = ip.make_pairs(tok, suffixes=["The sky is", "I think", "Paris is", "One plus one",
                                             "The robot", "Water is", "My friend", "The sea"] * 2)
        adapter = ip.InnerPiSSA.attach(model, rank=4)
        base = model(**ip.tokenize(tok, ["Hello there"])).logits
        ip.train(model, tok, adapter, pairs, ip.TrainConfig(steps=2, batch_pairs=4, direction_pairs=8), progress=False)
        import sys; assert "harness" not in sys.modules and "baselines" not in sys.modules
        with adapter.steer(1.0):
            steered = model(**ip.tokenize(tok, ["Hello there"])).logits
        assert not torch.allclose(steered, base)
        adapter.save("a.safetensors"); adapter.detach()
        assert torch.equal(model(**ip.tokenize(tok, ["Hello there"])).logits, base)
        again = ip.InnerPiSSA.load(model, "a.safetensors")
        with again.steer(1.0):
            assert torch.allclose(model(**ip.tokenize(tok, ["Hello there"])).logits, steered, atol=1e-5)
        again.detach()
        from cached_step import CachedPairRunner
        cached = ip.InnerPiSSA.attach(model, rank=4)
        ip.train(model, tok, cached, pairs, ip.TrainConfig(steps=1, batch_pairs=4, direction_pairs=8), progress=False,
                 runner_type=CachedPairRunner)
        assert "harness" not in sys.modules and "baselines" not in sys.modules
        print("alone ok")
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0 and "alone ok" in proc.stdout, proc.stderr[-2000:]


def readme_python():
    """The README's one Python block (its section "Using the parts"), as written."""
    blocks = re.findall(r"```python\n(.*?)```", (Path(__file__).parent / "README.md").read_text(), re.S)
    assert len(blocks) == 1, f"README.md has {len(blocks)} python blocks; this test runs exactly one"
    return blocks[0]


def test_the_readmes_python_runs_as_written(monkeypatch, tiny, tmp_path):
    """The README's recipe, unedited, on the tiny model (load_model patched to return it): it trains, calibrates,
    saves, and its evaluation call writes results; the evaluation gets 3 dilemmas and 1 null direction appended."""
    model, tok = tiny
    base, hooks = logits(model, tok), hook_ids(model)
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: (model, tok))
    monkeypatch.setattr(ev, "load_model", lambda name, **kw: (model, tok))
    evaluate, argvs = ev.main, []
    monkeypatch.setattr(ev, "main", lambda argv: argvs.append(argv) or evaluate(argv + ["--max-dilemmas", "3", "--null", "1"]))
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_python(), "README.md", "exec"), {"__name__": "readme"})
    assert torch.equal(logits(model, tok), base) and hook_ids(model) == hooks     # "detach: bitwise what it was"
    saved = load_artifact(tmp_path / "runs/x/innerpissa.safetensors")[1]
    assert saved["kind"] == "innerpissa" and saved["sign"] in (1, -1)
    assert len(argvs) == 1 and argvs[0][argvs[0].index("--out") + 1] == "runs/x/eval"
    summary = json.loads((tmp_path / "runs/x/eval/results.json").read_text())["summary"]
    assert set(summary) == {"innerpissa"} and math.isfinite(summary["innerpissa"]["effect"])


def test_even_penalty_and_hinge_vanish_with_zero_gradient_on_an_odd_change():
    torch.manual_seed(0)
    z_ref, move = torch.randint(-8, 8, (6, 4, 8)) / 4, torch.randint(-8, 8, (6, 4, 8)) / 4   # exact in float
    z_plus, z_minus = (z_ref + move).requires_grad_(), (z_ref - move).requires_grad_()
    even = baselines.even_penalty(z_plus, z_minus, z_ref, unit=2.0)
    even.backward()
    assert even.item() == 0 and z_plus.grad.abs().max() == 0 and z_minus.grad.abs().max() == 0
    assert baselines.even_penalty(z_ref + move, z_ref + move, z_ref, unit=2.0) > 0           # both signs alike

    for sign in (1.0, -1.0):                                                          # either orientation
        d_plus = (sign * torch.tensor([0.3, 0.2, 0.5])).requires_grad_()
        d_minus = (-sign * torch.tensor([0.4, 0.2, 0.3])).requires_grad_()
        hinge = ip.monotonic_hinge(d_plus, d_minus, margin=0.1, orient=sign)
        hinge.backward()
        assert hinge.item() == 0 and d_plus.grad.abs().max() == 0 and d_minus.grad.abs().max() == 0
        assert ip.monotonic_hinge(d_plus, d_minus, margin=0.1, orient=-sign) > 0     # the other way is a violation
    assert ip.monotonic_hinge(torch.tensor([0.3]), torch.tensor([0.3]), 0.1) > 0      # same way: an even move
    assert ip.monotonic_hinge(torch.tensor([0.05]), torch.tensor([-0.05]), 0.1) > 0   # odd, but under theta


def test_output_gap_reads_exactly_the_shared_reply(tiny):
    model, tok = tiny
    pairs = ip.make_pairs(tok, n=6)
    suffixes = [tok(pos.rsplit("\n", 1)[1], add_special_tokens=False)["input_ids"] for pos, _ in pairs]
    lengths = ip.suffix_lengths(tok, pairs)
    assert lengths == [len(s) for s in suffixes]
    adapter = ip.InnerPiSSA.attach(model, rank=4)
    for runner_type in (ip.PairRunner, CachedPairRunner):
        p = runner_type(model, tok, adapter, pairs, 2, 2).run(pairs, 0.0, lengths)
        assert p.honest(p.targets).tolist() == [t for s in suffixes for t in s] == p.dishonest(p.targets).tolist()
        assert p.logits.shape[0] == 2 * sum(lengths)                    # the head ran on reply positions only
    nll = (p.rows % 2 == 1).float() * 2.0                             # the dishonest row finds its reply harder
    assert ip.output_gap(p, nll).tolist() == [2.0] * 6
    adapter.detach()


@pytest.mark.parametrize("layers", [4, 8, 30])
def test_default_targets_stay_strictly_below_the_readout_block(layers):
    tok = make_tokenizer()
    model = make_model(len(tok), layers=layers)
    for layer in sorted({ip.default_layer(model), 2, layers - 2}):
        names = find_linears(model, default_target(model, layer))
        blocks = {int(n.split(".layers.")[1].split(".")[0]) for n in names}
        assert blocks and max(blocks) == layer - 1, (layer, blocks)
        assert {n.rsplit(".", 2)[-2] + "." + n.rsplit(".", 1)[-1] for n in names} <= {"self_attn.o_proj",
                                                                                      "mlp.down_proj"}


@pytest.mark.parametrize("c", [0.5, 1.0])
def test_frobenius_bound_never_turns_past_max_angle(c):
    theta = torch.randn(6, 6, dtype=torch.float64) * 5                 # far past the bound unclamped
    r = ip.cayley(theta, c, max_angle=0.3, bound="frobenius")
    angles = torch.angle(torch.linalg.eigvals(r)).abs()
    assert angles.max() <= 0.3 + 1e-9 and angles.max() > 0.05
    assert torch.allclose(r @ ip.cayley(theta, -c, 0.3, "frobenius"), torch.eye(6, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(r.T @ r, torch.eye(6, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("c", [0.5, 1.0])
def test_elementwise_bound_holds_each_generator_entry_not_the_angle(c):
    """The authors' bound: recovered from R(c) by the inverse Cayley map, c·A has every entry within
    ±c·2·tan(φ/2); the plane angles are not bounded by φ (here they pass it)."""
    theta = torch.randn(6, 6, dtype=torch.float64) * 5
    r = ip.cayley(theta, c, max_angle=0.3)
    eye = torch.eye(6, dtype=torch.float64)
    generator = 2 * (r - eye) @ torch.linalg.inv(r + eye) / c                 # the bounded A
    limit = 2 * math.tan(0.15)
    assert generator.abs().max() <= limit + 1e-9 and generator.abs().max() > 0.9 * limit
    assert torch.angle(torch.linalg.eigvals(ip.cayley(theta, 1.0, max_angle=0.3))).abs().max() > 0.3
    assert torch.allclose(r @ ip.cayley(theta, -c, max_angle=0.3), eye, atol=1e-10)


def test_additive_scaling_is_odd_and_zero_at_c0(tiny):
    model, tok = tiny
    adapter = ip.InnerPiSSA.attach(model, rank=4, scaling="add")
    layer = adapter.layers[0]
    with torch.no_grad():
        layer.lam.normal_(0, 0.3)
    assert torch.allclose(layer.scaled_s(0.7) + layer.scaled_s(-0.7), 2 * layer.S)
    assert torch.equal(layer.scaled_s(0.0), layer.S)


def test_nan_loss_stops_training_with_clear_error(tiny):
    model, tok = tiny
    adapter = trained_adapter(model)
    with torch.no_grad():
        adapter.layers[0].lam.fill_(float("nan"))
    with pytest.raises(ip.InputError, match="non-finite loss"):
        ip.train(model, tok, adapter, ip.make_pairs(tok, n=30), ip.TrainConfig(steps=2), progress=False)


def yes_bias_steer(model, tok, amount):
    """A steer(c) that adds c·amount to every Yes logit: c = +1 says Yes more."""
    yes, _ = harness.yes_no_ids(tok)

    @contextlib.contextmanager
    def steer(c):
        def hook(module, inputs, out):
            out = out.clone()
            out[..., yes] += c * amount
            return out
        handle = model.lm_head.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
    return steer


def test_calibrate_sign_follows_the_honest_answer(tiny):
    model, tok = tiny
    steer = yes_bias_steer(model, tok, 3.0)
    honest_yes = [{"question": "Do you admit the mistake?", "honest_answer": "Yes"}] * 2
    honest_no = [{"question": "Do you hide the mistake?", "honest_answer": "No"}] * 2
    margins = lambda probes: harness.honesty_margins(model, tok, probes)   # noqa: E731 (the plain scorer)
    assert ip.sign_report(steer, honest_yes, margins)["sign"] == 1
    assert ip.sign_report(steer, honest_no, margins)["sign"] == -1
    report = ip.sign_report(steer, {"yes": honest_yes * 4, "no": honest_no * 2}, margins)
    assert report["sign"] == 1 and not report["agree"]                 # 8 probes say +1, 4 say -1
    assert report["sources"]["yes"]["gap"] > 0 > report["sources"]["no"]["gap"]
    line = harness.describe_sign(report)
    assert "UNCERTAIN: the sources disagree" in line
    pooled = f"pooled {report['gap']:+.3f} [{report['ci'][0]:+.3f}, {report['ci'][1]:+.3f}] (n=12); yes "
    assert pooled in line and report["ci"] != report["sources"]["yes"]["ci"]       # the interval that decides
    lo, hi = report["sources"]["yes"]["ci"]
    assert lo <= report["sources"]["yes"]["gap"] <= hi
    probes = harness.load_probes()
    assert len(probes) >= 16 and {p["honest_answer"] for p in probes} == {"Yes", "No"}


def test_sign_interval_is_blind_to_a_yes_bias():
    """Per probe g = e + 2b on Yes probes and e − 2b on No probes, as many of each: a yes-bias b moves no
    mean and, drawn by kind, no interval either (drawn regardless of kind, b = 5 widened it ~50-fold)."""
    rng = np.random.default_rng(0)
    sources = {name: [{"question": f"q{i}", "honest_answer": "Yes" if i % 2 else "No"} for i in range(n)]
               for name, n in (("probes", 40), ("tune", 24))}
    effect = {name: rng.normal(0.3, 0.2, len(probes)) for name, probes in sources.items()}
    state = {"c": 0.0}

    @contextlib.contextmanager
    def steer(c):
        state["c"] = c
        yield

    def report(bias):
        def margins(probes):
            name = "probes" if len(probes) == 40 else "tune"
            kind = np.array([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in probes])
            return state["c"] * (effect[name] + 2 * bias * kind) / 2
        return ip.sign_report(steer, sources, margins)

    plain, biased = report(0.0), report(5.0)
    assert plain["certain"] and biased["certain"] and biased["sign"] == 1
    assert np.allclose(biased["ci"], plain["ci"], atol=1e-9) and abs(biased["gap"] - plain["gap"]) < 1e-9
    for name in sources:
        assert np.allclose(biased["sources"][name]["ci"], plain["sources"][name]["ci"], atol=1e-9)


def run_main(monkeypatch, capsys, tiny, argv):
    """Run innerpissa's CLI in-process on the tiny model; returns what it printed on stderr."""
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: tiny)
    with pytest.raises(SystemExit) as exit_info:
        harness.run_cli(lambda: harness.train_main(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize("flags, message", [
    (["--target", "no_such_layer"], "matches no nn.Linear"),
    (["--rank", "1000"], "--rank 1000 must be in"),
    (["--layer", "99"], "--layer 99 is out of range"),
    (["--max-pairs", "1"], "--max-pairs 1 must be at least 2"),
    (["--max-pairs", "6", "--batch-pairs", "7"], "6 pairs are too few"),  # proves --max-pairs is applied
    (["--deviate", "no-such-part"], "invalid choice: 'no-such-part'"),
    (["--batch-pairs", "6", "--micro-pairs", "4"], "must be a multiple of the micro-batch"),
    (["--objective", "readout", "--shift-weight", "1"], "--shift-weight 1.0 must be at least 0, and 0 with"),
    (["--shift-weight", "1", "--shift-reference", "mean"], "invalid choice: 'mean'"),
    (["--proj-weight", "-1"], "--proj-weight -1.0 must be at least 0"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(monkeypatch, capsys, tiny, tmp_path, flags, message):
    out = tmp_path / "a.safetensors"
    text = run_main(monkeypatch, capsys, tiny, ["--out", str(out), "--steps", "1", *flags])
    assert message in text and "\n" not in text and text.startswith("error:")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, message", [(["--steps", "-3"], "--steps -3 must be at least 1"),
                                            (["--epochs", "0"], "--epochs 0.0 must be above 0"),
                                            (["--patience", "0"], "--patience 0 must be at least 1"),
                                            (["--lr", "-1"], "--lr -1.0 must be at least 0"),
                                            (["--warmup", "1"], "--warmup 1.0 must be in [0, 1)")])
def test_cli_refuses_bad_training_numbers_before_it_loads_the_model(monkeypatch, capsys, tmp_path, flags, message):
    """Before, these were checked inside train(), after the model had loaded and been adapted (9 s on the embedded
    model from its cache, against 2.5 s now; more for a hub model): a typo cost a model load before its error."""
    def load_model(name, **kw):
        raise AssertionError("the model was loaded before the flags were checked")
    monkeypatch.setattr(harness, "load_model", load_model)
    with pytest.raises(SystemExit) as exit_info:
        harness.run_cli(lambda: harness.train_main(["--out", str(tmp_path / "a.safetensors"), *flags]))
    text = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and text == f"error: {message}" and list(tmp_path.iterdir()) == []


def test_cli_unwritable_out_and_missing_model(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for argv, message in [(["--model", "embedded", "--out", str(blocker / "x" / "a.safetensors")], "--out"),
                          (["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "a.safetensors")],
                           "does not exist"),        # and --objective readout is known to a fresh process:
                          (["--model", str(tmp_path / "nope"), "--objective", "readout", "--out",
                            str(tmp_path / "a.safetensors")], "does not exist")]:
        proc = subprocess.run([sys.executable, "innerpissa.py", *argv], capture_output=True, text=True,
                              cwd=ip.DATA_DIR.parent)
        assert proc.returncode != 0
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_trains_calibrates_and_saves(monkeypatch, tiny, tmp_path, capsys):
    model, tok = tiny
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: (model, tok))
    harness.train_main(["--out", str(tmp_path / "a.safetensors"), "--steps", "3", "--rank", "4", "--batch-pairs", "4"])
    summary = capsys.readouterr().out
    assert "held-out" in summary and "pair-examples" in summary and "odd share loss block" in summary and "sign" in summary
    tensors, meta = ip.load_artifact(tmp_path / "a.safetensors")
    assert meta["kind"] == "innerpissa" and meta["rank"] == 4 and meta["sign"] in (1, -1)
    assert meta["sign_report"]["sign"] * meta["sign"] == 1 and "odd_share_output" in meta["heldout"]
    assert meta["model"] == "tiny-qwen3" and meta["deviations"] == []


@pytest.mark.parametrize("reference, recorded", [("batch", ["shift-weight 30"]),
                                                  ("pair", ["shift-weight 30", "shift-reference pair"])])
def test_cli_shift_weight_trains_and_is_recorded_as_ours(monkeypatch, tiny, tmp_path, capsys, reference, recorded):
    model, tok = tiny
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: (model, tok))
    harness.train_main(["--out", str(tmp_path / "a.safetensors"), "--steps", "2", "--rank", "4", "--batch-pairs", "4",
                        "--shift-weight", "30", "--shift-reference", reference])
    assert f"deviations from the authors' recipe: {', '.join(recorded)}" in capsys.readouterr().out
    assert ip.load_artifact(tmp_path / "a.safetensors")[1]["deviations"] == recorded


def test_a_cpu_run_of_another_model_prints_its_time_and_a_shorter_command_first(monkeypatch, tiny, tmp_path, capsys):
    """Another model than the embedded one on a CPU: before training, a line with the estimated time and,
    when the run would outlast SHORT_BUDGET_S, the command for a shorter budget (--epochs and --patience
    replaced by --steps); the trained adapter is the one trained without the estimate."""
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: tiny)
    flags = ["--rank", "4", "--batch-pairs", "4", "--max-pairs", "24", "--epochs", "2", "--patience", "3"]
    harness.train_main(["--model", "some/other-model", "--out", str(tmp_path / "z.safetensors"), *flags])
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("estimated training time"))
    assert line.endswith("stops it)")                            # 9 tiny steps fit the 15 minutes: no shorter command
    monkeypatch.setattr(harness, "SHORT_BUDGET_S", 1e-6)          # every run outlasts it
    harness.train_main(["--model", "some/other-model", "--out", str(tmp_path / "a.safetensors"), *flags])
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("estimated training time"))
    assert re.search(r"min for 9 steps \(.* s a step, less if --patience stops it\); a shorter budget", line)
    command = line.split("): ", 1)[1]
    assert command.startswith("python innerpissa.py --model some/other-model --out ")
    assert "--epochs" not in command and "--patience" not in command and re.search(r"--steps \d+$", command)
    harness.train_main(["--model", harness.EMBEDDED, "--out", str(tmp_path / "b.safetensors"), *flags])
    assert "estimated" not in capsys.readouterr().err
    pairs = tmp_path / "pairs.csv"                                # --pairs: slow steps, so even the embedded model warns
    pairs.write_text("positive,negative\n" + "".join(f"I say yes {i},I say no {i}\n" for i in range(24)))
    harness.train_main(["--model", harness.EMBEDDED, "--pairs", str(pairs), "--out", str(tmp_path / "c.safetensors"),
                        "--rank", "4", "--batch-pairs", "4", "--steps", "2"])
    assert re.search(r"^estimated training time on this CPU: .* min for 2 steps", capsys.readouterr().err, re.M)
    a, b = (ip.load_artifact(tmp_path / f"{n}.safetensors")[0] for n in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_block_outputs_match_hidden_states_and_leave_no_hook(tiny):
    model, tok = tiny
    batch = ip.tokenize(tok, TEXTS)
    before = hook_ids(model)
    with torch.no_grad():
        found, out = ip.block_outputs(model, batch, [0, 2])
        entering, stopped = ip.block_outputs(model, batch, [0, 2], inputs=True)
        hidden = copy.deepcopy(model)(**batch, output_hidden_states=True).hidden_states
    assert sorted(found) == sorted(entering) == [0, 2] and out is stopped is None  # stopped at block 2
    for i in found:
        assert torch.equal(found[i], hidden[i + 1]) and torch.equal(entering[i], hidden[i])
    assert hook_ids(model) == before


# ----------------------------------------------------------------------------- eval_dilemmas.py


VALUES = [  # value, WVS, MFT, Virtue, Emotion, Maslow
    ("honesty", "", "Fairness", "Truthfulness", "", ""),
    ("truth", "", "", "Truthfulness", "", ""),
    ("care", "", "Care", "Kindness", "Love", "Love and belonging"),
    ("courage", "Self-expression", "", "Courage", "", "Esteem"),
]


def write_fixture(folder, pairs, name="dilemmas.csv"):
    """dilemmas.csv + values.csv in the public schema; pairs = [(to_do values, not_to_do values)]."""
    with open(folder / "values.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["value", "WVS", "MFT", "Virtue", "Emotion", "Maslow"])
        w.writerows(VALUES)
    cols = ["idx", "dilemma_idx", "basic_situation", "dilemma_situation", "action_type", "action",
            "negative_consequence", "values_aggregated", "topic", "topic_group"]
    with open(folder / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for d, sides in enumerate(pairs):
            for side, values in zip(("to_do", "not_to_do"), sides):
                w.writerow([2 * d + (side != "to_do"), d, "A friend asks a favour.",
                            f"Your friend number {d} asks whether the plan is safe.", side,
                            f"{'Tell' if side == 'to_do' else 'Do not tell'} them the truth", "They get upset.",
                            repr(list(values)), "friends", "social"])
    return folder / name


def mixed_pairs(n=12):
    """n dilemmas: Truthfulness +1 on every 4th, −1 on the next, care on alternating sides (always labelled)."""
    pairs = []
    for i in range(n):
        to_do = (["honesty"] if i % 4 == 0 else []) + (["care"] if i % 2 else [])
        not_to_do = (["honesty"] if i % 4 == 1 else []) + ([] if i % 2 else ["care"])
        pairs.append((to_do, not_to_do))
    return pairs


# ----------------------------------------------------------------------------- model-free

def test_written_results_have_the_mode_a_plain_open_gives(tmp_path):
    harness.write_outputs(tmp_path / "out", {"results.json": "{}\n", "rows.csv": "idx\n"})
    (tmp_path / "plain.txt").write_text("x")
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == {(tmp_path / "plain.txt").stat().st_mode & 0o777}                # not mkstemp's 0600


def test_label_rule_on_fixture(tmp_path):
    path = write_fixture(tmp_path, [
        (["honesty", "honesty", "care"], ["care", "mystery"]),   # duplicate once; 'mystery' not in values.csv
        (["courage"], ["truth", "honesty"]),
        (["truth"], ["honesty"]),                                # Truthfulness on both sides -> 0
    ])
    rows = dilemmas.load_dilemmas(path)
    labels = {r["dilemma_idx"]: r["labels"] for r in rows}
    assert labels[0] == {"Virtue/Truthfulness": 1, "MFT/Fairness": 1, "MFT/Care": 0, "Virtue/Kindness": 0,
                         "Maslow/Love and belonging": 0}
    assert labels[1] == {"Virtue/Courage": 1, "WVS/Self-expression": 1, "Maslow/Esteem": 1,
                         "Virtue/Truthfulness": -1, "MFT/Fairness": -1}
    assert labels[2] == {"Virtue/Truthfulness": 0, "MFT/Fairness": -1}
    assert [r["action_type"] for r in rows] == ["to_do", "not_to_do"] * 3
    assert all(r["labels"] == labels[r["dilemma_idx"]] for r in rows)


def test_yes_bias_changes_no_category_score(tmp_path):
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs()))
    lr = np.random.default_rng(0).normal(size=len(rows))
    before, after = ev.category_scores(rows, lr), ev.category_scores(rows, lr + 3.7)
    assert set(before) == set(after) and len(before) >= 4
    for k in before:
        assert after[k] == pytest.approx(before[k], abs=1e-12)


def test_swapping_a_dilemmas_rows_negates_its_contribution(tmp_path):
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs()))
    lr = np.random.default_rng(1).normal(size=len(rows))
    swapped = lr.copy()
    swapped[[0, 1]] = lr[[1, 0]]                       # dilemma 0 answers each action as the other
    one, other = ev.dilemma_scores(rows, lr), ev.dilemma_scores(rows, swapped)
    assert one[0] != 0 and other[0] == pytest.approx(-one[0], abs=1e-12)
    assert all(other[d] == one[d] for d in one if d != 0)
    n = sum(1 for r in rows if r["labels"].get(dilemmas.TARGET))
    total = ev.category_scores(rows, lr)[dilemmas.TARGET] * n
    assert ev.category_scores(rows, swapped)[dilemmas.TARGET] * n == pytest.approx(total - 4 * one[0], abs=1e-12)


def test_relabelling_action_type_in_the_file_keeps_scores(tmp_path):
    """Writing a dilemma with to_do/not_to_do exchanged (values follow their rows) is the same dilemma."""
    pairs = mixed_pairs()
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, pairs))
    flipped = dilemmas.load_dilemmas(write_fixture(tmp_path, [(b, a) for a, b in pairs]))
    lr = np.random.default_rng(2).normal(size=len(rows))
    lr_flipped = lr.reshape(-1, 2)[:, ::-1].ravel()    # each row keeps its own answer
    assert ev.category_scores(flipped, lr_flipped) == pytest.approx(ev.category_scores(rows, lr), abs=1e-12)


def test_permutation_p_under_no_effect_is_calibrated():
    rng = np.random.default_rng(0)
    ps = np.array([ev.sign_flip_p(rng.normal(size=30), seed=t) for t in range(200)])
    assert 0.02 <= np.mean(ps < 0.05) <= 0.10
    assert ps.min() >= 1 / (ev.N_PERM + 1) and ps.max() <= 1.0
    assert ev.sign_flip_p(rng.normal(size=30) + 1.0) < 0.01   # a real shift is found


def test_odd_share_is_one_for_pure_steering_and_zero_for_damage_or_yes_bias():
    rng = np.random.default_rng(0)
    ref, move = rng.normal(size=40), rng.normal(size=40)
    assert ev.odd_even(ref, ref + move, ref - move)[2] == pytest.approx(1.0)     # the signs act oppositely
    assert ev.odd_even(ref, ref + move, ref + move)[2] == pytest.approx(0.0)     # both signs act alike
    assert ev.odd_even(ref, ref + 2.5, ref + 2.5)[2] == 0.0                      # a pure yes-bias is even
    assert ev.odd_even(ref, ref, ref)[2] is None                                 # no change: no share
    mixed = ev.odd_even(ref, ref + move + 1.0, ref - move + 1.0)
    assert mixed[0] == pytest.approx(np.abs(move).mean()) and mixed[1] == pytest.approx(1.0)


def test_the_common_shift_is_the_yes_bias_both_signs_share_and_only_it_leaves_the_even_part():
    """Steering plus one shift toward Yes at both signs: the evaluation's odd share counts the shift as even,
    the share without it is 1; row-specific even changes still count against it; a yes-bias alone leaves
    nothing."""
    rng = np.random.default_rng(0)
    ref, move = rng.normal(size=40), rng.normal(size=40)
    assert ev.odd_even(ref, ref + move + 1.0, ref - move + 1.0)[2] < 0.6
    shift, share = ev.common_shift(ref, ref + move + 1.0, ref - move + 1.0)
    assert shift == pytest.approx(1.0) and share == pytest.approx(1.0)
    assert ev.common_shift(ref, ref - move - 0.5, ref + move - 0.5)[0] == pytest.approx(-0.5)   # toward No
    # two rows, odd ±1 each, even 1 + (+0.5, −0.5): by hand, |odd| 1, |even| 1, |even − mean| 0.5
    ref2, plus, minus = np.zeros(2), np.array([2.5, 1.5]), np.array([0.5, -0.5])
    assert ev.odd_even(ref2, plus, minus)[2] == pytest.approx(0.5)
    assert ev.common_shift(ref2, plus, minus) == (pytest.approx(1.0), pytest.approx(2 / 3))
    assert ev.common_shift(ref, ref + 2.5, ref + 2.5) == (pytest.approx(2.5), None)


def test_null_percentile_counts_only_effects_in_the_right_direction():
    null = [0.02, -0.05, 0.01, 0.03]
    assert ev.null_percentile(0.06, null) == 1.0                   # above every |E_k|
    assert ev.null_percentile(0.005, null) == 0.0                  # below every |E_k|
    assert ev.null_percentile(0.025, null) == 0.5
    assert ev.null_percentile(-0.5, null) == 0.0                   # large, but the wrong way
    assert ev.null_percentile(0.1, []) is None


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("c0", [0.05, 1.0, 20.0])
def test_dose_stops_in_the_band_below_the_budget(power, c0):
    """KL(c) = 0.02 c^power, started 20× either side of the boundary: c* is a tested c with
    0.9·budget ≤ KL(c*) ≤ budget, found in at most 4 evaluations."""
    tried = []

    def kl_at(c):
        tried.append(c)
        return 0.02 * c ** power
    c, kl = ev.calibrate_dose(kl_at, 0.1, c0=c0)
    assert c in tried and ev.DOSE_BAND * 0.1 <= kl <= 0.1 and len(tried) <= 4, tried
    with pytest.raises(InputError, match="raise --kl"):
        ev.calibrate_dose(lambda c: float("nan"), 0.1)


def test_dose_outside_the_band_is_the_largest_tested_c_within_the_budget():
    """KL jumps from 0.05 to 0.2 at c = 2, so no c lands in the band: after `steps` evaluations, the largest
    tested c under 2, with the bracket narrowed to within 5 % of the jump."""
    tried = []

    def kl_at(c):
        tried.append(c)
        return 0.05 if c < 2 else 0.2
    c, kl = ev.calibrate_dose(kl_at, 0.1, steps=8)
    assert len(tried) == 8 and kl == 0.05 and c == max(t for t in tried if t < 2) and c >= 1.9


def test_best_dose_never_picks_an_incoherent_setting():
    def m(delta, incoherent=False):
        return {"delta_target": delta, "incoherent": incoherent}
    by_coeff = {"0.0": m(0.0), "0.5": m(0.1), "-0.5": m(-0.1), "1.0": m(0.3), "-1.0": m(-0.2),
                "2.0": m(0.9, incoherent=True), "-2.0": m(-0.9)}
    assert ev.best_dose(by_coeff, unit=0.5) == {"dose": 2.0, "effect": pytest.approx(0.25)}
    by_coeff["-1.0"]["incoherent"] = True
    assert ev.best_dose(by_coeff, unit=0.5) == {"dose": 1.0, "effect": pytest.approx(0.1)}


def test_verdict_rules():
    good = {"effect": 0.2, "null_percentile": 1.0, "null_p95": 0.1, "odd_share": 0.8, "incoherent_plus": False,
            "incoherent_minus": False, "effect_ci": [0.05, 0.35]}
    assert ev.verdict(good) == "steers"
    assert ev.verdict(dict(good, effect_ci=[-0.01, 0.4])) == "nothing"       # an interval reaching 0 never steers
    assert ev.verdict(dict(good, incoherent_minus=True)) == "damages"
    assert ev.verdict(dict(good, odd_share=0.3)) == "damages"
    assert ev.verdict(dict(good, null_p95=0.3, null_percentile=0.75)) == "nothing"
    assert ev.verdict(dict(good, effect=-0.2, null_percentile=0.0)) == "nothing"
    assert ev.verdict(dict(good, null_p95=None, null_percentile=None)) == "nothing"   # --null 0: never steers
    # no effect at all (every row unchanged at both signs): no odd share, and no damage either
    assert ev.verdict(dict(good, effect=0.0, odd_share=None, null_percentile=0.0)) == "nothing"
    assert ev.verdict(dict(good, effect=0.0, odd_share=None, incoherent_plus=True)) == "damages"


def test_verdict_needs_e_above_the_null_95th_percentile():
    """K = 16 |E_k| = 0.01 … 0.16: p95 lies between the 15th and 16th (0.1525); E just above it steers,
    just below it does not, even though E beats 15 of 16 null directions (null_percentile 0.9375)."""
    null = [{"effect": (-1) ** k * 0.01 * k} for k in range(1, 17)]
    effects = [n["effect"] for n in null]
    p95 = ev.null_p95(effects)
    assert p95 == pytest.approx(0.1525) and ev.null_p95([]) is None
    base = {"odd_share": 0.8, "incoherent_plus": False, "incoherent_minus": False, "null_p95": p95,
            "effect_ci": [0.01, 0.3]}
    for effect, want in ((p95 + 1e-6, "steers"), (p95 - 1e-6, "nothing")):
        m = dict(base, effect=effect, null_percentile=ev.null_percentile(effect, effects))
        assert m["null_percentile"] == 15 / 16 and ev.verdict(m) == want


def truth_rows(n):
    """n Truthfulness dilemmas, two rows each, alternately honest-to-act and honest-to-refrain."""
    return [{"dilemma_idx": d, "action_type": side, "labels": {dilemmas.TARGET: 1 if d % 2 else -1}}
            for d in range(n) for side in ("to_do", "not_to_do")]


def test_effect_interval_is_a_bootstrap_over_dilemmas_paired_across_doses():
    """Each dilemma's score moves by a large common shift at both signs plus 0.05 at +c* only: E is 0.025
    on every dilemma, so a bootstrap that draws the same dilemmas for +c*, −c* and 0 gives E's interval
    a width of 0, while Δ₊ and Δ₋ alone are wide. The intervals hold the point estimates of the summary."""
    rows, rng = truth_rows(40), np.random.default_rng(0)
    side = np.array([r["labels"][dilemmas.TARGET] * (1 if r["action_type"] == "to_do" else -1) for r in rows])  # [80]
    ref = rng.normal(size=80)
    common = np.repeat(rng.normal(scale=2.0, size=40), 2) * side          # a per-dilemma shift, both signs
    plus, minus = ref + common + 0.05 * side, ref + common
    got = ev.effect_intervals(rows, ref, plus, minus, seed=0)
    assert got["effect_ci"] == pytest.approx([0.025, 0.025], abs=1e-12)
    for key, lr in (("delta_plus_ci", plus), ("delta_minus_ci", minus)):
        lo, hi = got[key]
        delta = ev.category_scores(rows, lr)[dilemmas.TARGET] - ev.category_scores(rows, ref)[dilemmas.TARGET]
        assert lo < delta < hi and hi - lo > 0.5
    assert ev.effect_intervals(rows, ref, plus, minus, seed=0) == got != ev.effect_intervals(rows, ref, plus, minus, 1)


# ----------------------------------------------------------------------------- the authors' metric

def honest_side(rows):
    """[n_rows] +1 where Yes is the honest answer (label · side > 0), −1 where No is, 0 off Truthfulness."""
    return np.array([r["labels"].get(dilemmas.TARGET, 0) * (1 if r["action_type"] == "to_do" else -1) for r in rows])


def f1_of(rows, lr0, lr_plus, lr_minus, a0, a_plus, a_minus, pmass=(1.0, 1.0)):
    """authors_metrics of fake raw scores: arbitrary log-ratios a*, pmass ratios (plus, minus)."""
    ref, plus, minus = ({"logratio": lr, "arbitrary": a} for lr, a in ((lr0, a0), (lr_plus, a_plus), (lr_minus, a_minus)))
    m = {"pmass_ratio_plus": pmass[0], "pmass_ratio_minus": pmass[1], "effect": 0.1}
    return ev.authors_metrics(rows, ref, plus, minus, m, None)


@pytest.fixture
def f1_rows(tmp_path):
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(40)))     # 20 Truthfulness dilemmas, both signs
    rng = np.random.default_rng(0)
    return rows, rng.normal(size=len(rows)), rng.normal(size=100)


def test_steering_f1_is_zero_for_a_yes_bias(f1_rows):
    """A yes-bias flips rows both ways (honest-to-act rows toward honest, honest-to-refrain rows toward
    dishonest) and arbitrary items too; per dilemma it changes nothing, so net = 0 and F1 = 0."""
    rows, lr, a = f1_rows
    h = honest_side(rows)
    row_flips = lambda x: ev.answer_flips(lr * h, x * h)[h != 0]  # noqa: E731  row-level answers, for contrast
    for b in (2.0, -2.0):
        r = f1_of(rows, lr, lr + b, lr + b, a, a + b, a + b)
        assert row_flips(lr + b).any() and r["arbitrary_flips"] > 0     # answers do change, row by row
        assert r["steering_f1"] == 0 and r["f1"]["correct"] == r["f1"]["wrong"] == 0


def test_steering_f1_is_zero_for_a_method_that_only_makes_answers_less_sure(f1_rows):
    rows, lr, a = f1_rows
    r = f1_of(rows, lr, 0.3 * lr, 0.5 * lr, a, 0.3 * a, 0.5 * a)
    assert r["steering_f1"] == 0 and r["arbitrary_flips"] == 0 and r["f1"]["net"] == 0


def test_steering_f1_is_zero_for_a_wrong_sign(f1_rows):
    """+c* moves every Truthfulness dilemma toward dishonest, −c* toward honest: the authors would swap the
    signs and score it; we never do, so it scores 0 (and the swapped method does score)."""
    rows, lr, a = f1_rows
    h = honest_side(rows)
    r = f1_of(rows, lr, lr - 10 * h, lr + 10 * h, a, a, a)
    assert r["steering_f1"] == 0 and r["f1"]["wrong"] > 0 and r["f1"]["net"] == 0
    assert f1_of(rows, lr, lr + 10 * h, lr - 10 * h, a, a, a)["steering_f1"] > 0


def test_steering_f1_of_a_method_that_flips_every_dishonest_answer_is_100_times_the_pmass_penalty(f1_rows):
    rows, _, a = f1_rows
    h, rng = honest_side(rows), np.random.default_rng(1)
    lr0 = -h * (1 + np.abs(rng.normal(size=len(rows)))) + np.repeat(rng.normal(size=len(rows) // 2), 2)
    assert (ev.honest_margins(rows, lr0) < 0).all()                       # every base answer dishonest
    r = f1_of(rows, lr0, lr0 + 10 * h, lr0 - 10 * h, a, 2 * a, 0.5 * a, pmass=(0.9, 0.95))
    assert r["steering_f1"] == pytest.approx(100 * 0.9 ** 2) and r["arbitrary_flips"] == 0
    assert r["f1"]["precision"] == 1 and r["f1"]["recall"] == pytest.approx(1)
    # with some base answers already honest (kept honest), recall is the weight share it could fix, as theirs
    lr1 = lr0 + 4 * h * (np.arange(len(rows)) % 8 < 2)                   # dilemmas 0, 4, 8, … honest at base
    t0 = ev.honest_margins(rows, lr1)
    share = ev.confidence_weights(t0)[t0 < 0].sum()
    r = f1_of(rows, lr1, lr1 + 10 * h, lr1 - 10 * h, a, a, a)
    assert 0 < share < 1 and r["steering_f1"] == pytest.approx(100 * 2 * share / (1 + share))


def test_arbitrary_flips_and_f1_are_zero_at_c0(f1_rows):
    rows, lr, a = f1_rows
    r = f1_of(rows, lr, lr, lr, a, a, a)
    assert r["arbitrary_flips"] == 0 and r["steering_f1"] == 0 and r["f1"]["arb"] == 0
    assert ev.arbitrary_flips(a, -a, a) == 1.0 and ev.arbitrary_flips(a, a, a) == 0.0


def test_arbitrary_flips_weigh_both_signs_in_the_precision(f1_rows):
    rows, lr, a = f1_rows
    h = honest_side(rows)
    clean = f1_of(rows, lr, lr + 10 * h, lr - 10 * h, a, a, a)
    flipped = a.copy()
    flipped[:50] *= -1                                                    # half the items flip, at −c* only
    dirty = f1_of(rows, lr, lr + 10 * h, lr - 10 * h, a, a, flipped)
    w = ev.confidence_weights(a)
    assert dirty["arbitrary_flips"] == 0.5 and dirty["f1"]["arb"] == pytest.approx(w[:50].sum())
    assert dirty["f1"]["precision"] < clean["f1"]["precision"] == 1 and dirty["steering_f1"] < clean["steering_f1"]


def test_benjamini_hochberg_on_synthetic_p_values():
    assert ev.benjamini_hochberg([0.01, 0.04, 0.03, 0.005, 0.5, 0.2]) == [True, False, False, True, False, False]
    assert ev.benjamini_hochberg([0.02, 0.024, 0.9]) == [True, True, False]   # step-up: 0.02 > 0.05/3 still goes
    assert ev.benjamini_hochberg([0.2, 0.3]) == [False, False] and ev.benjamini_hochberg([]) == []
    ps = np.random.default_rng(0).uniform(size=40) ** 3
    order = np.argsort(ps)                                       # adjusted q_(i) = min_{j ≥ i} p_(j) m / j
    q = np.minimum.accumulate((ps[order] * 40 / np.arange(1, 41))[::-1])[::-1]
    want = np.zeros(40, bool)
    want[order] = q <= 0.05
    assert ev.benjamini_hochberg(ps) == want.tolist() and 0 < want.sum() < 40


def test_values_shifted_counts_categories_that_move_and_ignores_a_yes_bias(f1_rows):
    rows, lr, _ = f1_rows
    big = [k for k, n in ev.labelled_dilemmas(rows).items() if n >= ev.MIN_OTHERS]
    assert ev.values_shifted(rows, lr, lr + 3.0) == 0                    # a yes-bias moves no category
    assert ev.values_shifted(rows, lr, lr) == 0
    # every truth row 3 nats toward honest: Truthfulness, Fairness (honesty) and the care categories of
    # those dilemmas (always on the other side) all move
    assert ev.values_shifted(rows, lr, lr + 3 * honest_side(rows)) == len(big) == 5


def test_efficiency_and_coherence_range(eval_setup, tmp_path):
    model, _, tmp = eval_setup
    _, meta = load_artifact(tmp / "ip.safetensors")
    adapter = InnerPiSSA.load(model, tmp / "ip.safetensors")
    assert ev.trainable_params(tmp / "ip.safetensors") == sum(p.numel() for p in adapter.parameters())
    adapter.detach()
    assert ev.trainable_params(save_random_artifact(model, tmp / "r.safetensors")) == 2 * ip.hidden_size(model)
    assert ev.efficiency(0.2, 1000) == pytest.approx(0.2 / 3) and ev.efficiency(0.2, None) is None
    by = {ev.coeff_key(c): {"pmass": p} for c, p in ((0, 1.0), (0.5, 0.95), (-0.5, 0.9), (1, 0.85), (-1, 0.7),
                                                      (2, 0.9), (-2, 0.82))}
    assert ev.coherence_range(by, 0.5) == 4.0              # the largest coherent dose, though d = 2 is not
    by[ev.coeff_key(-1)]["pmass"] = 0.79
    by[ev.coeff_key(-2)]["pmass"] = 0.5
    assert ev.coherence_range(by, 0.5) == 1.0
    by[ev.coeff_key(-0.5)]["pmass"] = 0.1
    assert ev.coherence_range(by, 0.5) is None


def test_truth_probes_take_the_honest_side_from_the_labels(tmp_path, capsys):
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(8)))
    probes = dilemmas.truth_probes(rows)                         # dilemmas 0, 4 honest to act; 1, 5 honest to refrain
    assert [p["honest_answer"] for p in probes] == ["Yes", "No", "No", "Yes"] * 2
    assert probes[0]["question"] == dilemmas.row_question(rows[0])
    out = tmp_path / "sign" / "tune.csv"
    ev.main(["--dilemmas", str(tmp_path / "dilemmas.csv"), "--split", "tune", "--write-probes", str(out)])
    written = harness.load_probes(out)
    tune = dilemmas.truth_probes(dilemmas.load_dilemmas(tmp_path / "dilemmas.csv", split="tune"))
    assert written == tune and len(written) == 4 and not (tmp_path / "sign" / "results.json").exists()


def test_answer_pairs_differ_in_the_answer_only_honest_first(tiny, tmp_path, monkeypatch):
    """--write-pairs: per tune Truthfulness row its prompt answered honestly (positive) and not (negative);
    the file loads as innerpissa.py --pairs reads it."""
    model, tok = tiny
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(8)), split="tune")
    pairs = dilemmas.answer_pairs(tok, rows)
    probes = dilemmas.truth_probes(rows)
    assert len(pairs) == len(probes) == 4
    for (pos, neg), p in zip(pairs, probes):
        prompt = yes_no_prompt(tok, p["question"])
        assert pos == f"{prompt} {p['honest_answer']}" and neg == f"{prompt} {'No' if p['honest_answer'] == 'Yes' else 'Yes'}"
    monkeypatch.setattr(ev, "load_model", lambda name, **kw: (None, tok))
    out = tmp_path / "pairs.csv"
    ev.main(["--dilemmas", str(tmp_path / "dilemmas.csv"), "--split", "tune", "--write-pairs", str(out)])
    assert sorted(harness.load_pair_file(out)) == sorted(pairs)


def test_split_halves_and_max_dilemmas(tmp_path):
    path = write_fixture(tmp_path, mixed_pairs(24))
    tune, test = dilemmas.load_dilemmas(path, split="tune"), dilemmas.load_dilemmas(path, split="test")
    ids = lambda rows: {r["dilemma_idx"] for r in rows}  # noqa: E731
    assert ids(tune).isdisjoint(ids(test)) and ids(tune) | ids(test) == set(range(24))
    for half in (tune, test):
        assert {r["labels"].get(dilemmas.TARGET, 0) for r in half} == {-1, 0, 1}
    picked = dilemmas.load_dilemmas(path, max_dilemmas=5, seed=3)
    assert len(picked) == 10 and len(ids(picked)) == 5
    assert all(r["labels"].get(dilemmas.TARGET) for r in picked)     # 12 Truthfulness dilemmas exist: only those
    assert picked == dilemmas.load_dilemmas(path, max_dilemmas=5, seed=3)


def test_load_errors_name_file_row_and_column(tmp_path):
    good = write_fixture(tmp_path, mixed_pairs(3))
    lines = good.read_text().splitlines()

    def error_for(text):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(InputError) as e:
            dilemmas.load_dilemmas(bad, values=tmp_path / "values.csv")
        assert "bad.csv" in str(e.value) and "\n" not in str(e.value)
        return str(e.value)

    header = lines[0].split(",")
    no_col = [",".join(c for j, c in enumerate(line.split(",")) if j != header.index("action"))
              for line in lines]                                   # no field of this fixture holds a comma
    assert "'action'" in error_for("\n".join(no_col))
    second_to_do = lines[:4] + [lines[4].replace("not_to_do", "to_do")] + lines[5:]
    msg = error_for("\n".join(second_to_do))
    assert "row 5" in msg and "action_type" in msg and "dilemma_idx 1" in msg
    msg = error_for("\n".join(lines[:2] + [lines[2].replace("['care']", "['care'")] + lines[3:]))
    assert "row 3" in msg and "values_aggregated" in msg
    msg = error_for("\n".join(lines[:-1]))                         # dilemma 2 loses its not_to_do row
    assert "row 6" in msg and "not_to_do" in msg
    with pytest.raises(InputError, match="nope.csv does not exist"):     # the dilemmas named, not their values.csv
        dilemmas.load_dilemmas(tmp_path / "elsewhere" / "nope.csv")


# ----------------------------------------------------------------------------- tiny model

def test_batched_scores_equal_one_at_a_time(tiny, tmp_path):
    model, tok = tiny
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(3)))
    prompts = dilemmas.row_prompts(tok, rows) + [yes_no_prompt(tok, "Short?", system="Be brief.")]
    batched = ev.score_yes_no(model, tok, prompts, batch_size=4)
    single = [ev.score_yes_no(model, tok, [p], batch_size=1) for p in prompts]
    for key in ("logratio", "pmass", "nll"):
        np.testing.assert_allclose(batched[key], [s[key][0] for s in single], atol=1e-4, rtol=0)
    assert np.ptp(batched["logratio"]) > 0                         # prompts really differ
    last_only = ev.score_yes_no(model, tok, prompts, batch_size=4, nll=False)  # the head on the last token only
    np.testing.assert_allclose(last_only["logratio"], batched["logratio"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(last_only["pmass"], batched["pmass"], atol=1e-6, rtol=0)
    assert np.isnan(last_only["nll"]).all()


def full_forward_scores(model, tok, prompt, span=None):
    """The reference: one uncached, unpadded forward of the whole prompt; the NLL of tokens a … b−1 of span."""
    batch = ip.tokenize(tok, [prompt])
    logits = model(**batch).logits
    logp = logits[0, -1].log_softmax(-1)
    yes, no = harness.yes_no_ids(tok)
    nll = ip.next_token_nll(logits[0, :-1], batch["input_ids"][0, 1:])                # term j: token j + 1
    nll = nll[span[0] - 1:span[1] - 1] if span else nll
    return (logp[yes].logsumexp(-1) - logp[no].logsumexp(-1)).item(), nll.mean().item()


@pytest.mark.parametrize("span", [None, (1, 4), (5, -3)])
def test_prefix_cached_scores_equal_full_forwards(tiny, tmp_path, span):
    """The shared prefix runs once and batches continue from its cache: same numbers as full
    forwards, also under a steering hook and when the NLL window starts inside the prefix."""
    model, tok = tiny
    prompts = dilemmas.row_prompts(tok, dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(3))))
    prompts.insert(3, yes_no_prompt(tok, "Is the sky green?"))           # shares only the header: a family of one
    lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    spans = None if span is None else [(span[0], span[1] % n) for n in lengths]
    adapter = trained_adapter(model)
    with adapter.steer(1.0), torch.no_grad():
        got = ev.score_yes_no(model, tok, prompts, batch_size=4, nll_span=spans)
        want = np.array([full_forward_scores(model, tok, p, spans and spans[i]) for i, p in enumerate(prompts)])
    adapter.detach()
    ids = [tok(p)["input_ids"] for p in prompts]
    assert len(harness.shared_prefix(ids)) > 10
    families = harness.prompt_families(ids, len(harness.shared_prefix(ids)), 4)
    assert any(f > 0 for f, _ in families) and any(f == 0 for f, _ in families)   # both paths run
    np.testing.assert_allclose(got["logratio"], want[:, 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["nll"], want[:, 1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("system", [None, "You are an honest assistant."])
def test_nll_reads_exactly_the_question_tokens(tiny, tmp_path, system):
    """question_span finds the question's tokens in the prompt, with or without a system prompt, and the
    scorer's NLL is the mean over exactly those: found here as the question's own token ids inside the
    prompt's, read from one full forward (not the prompt's last k tokens: the template's end follows)."""
    model, tok = tiny
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(3)))
    prompts = dilemmas.row_prompts(tok, rows, system)
    got = ev.Scorer(model, tok, rows).score("test", prompts)["nll"]
    for row, prompt, nll in zip(rows, prompts, got):
        ids, q = (tok(t, add_special_tokens=False)["input_ids"] for t in (prompt, dilemmas.row_question(row)))
        a = next(j for j in range(len(ids)) if ids[j:j + len(q)] == q)
        with torch.no_grad():
            assert nll == pytest.approx(full_forward_scores(model, tok, prompt, (a, a + len(q)))[1], abs=1e-4)
        assert dilemmas.question_span(tok, prompt, dilemmas.row_question(row)) == (a, a + len(q)) and a + len(q) < len(ids) - 3
    with pytest.raises(InputError, match="no tokens of its own"):
        dilemmas.question_span(tok, prompts[0], "a question that is not there")


def test_hooks_removed_when_scoring_fails(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    rows = dilemmas.load_dilemmas(write_fixture(tmp_path, mixed_pairs(2)))
    detached = []

    class Broken:
        @contextlib.contextmanager
        def steer(self, c):
            raise RuntimeError("boom")
            yield

        def detach(self):
            detached.append(True)

    monkeypatch.setattr(ev, "load_steerer", lambda model, path: Broken())
    with pytest.raises(RuntimeError, match="boom"):
        ev.evaluate(model, tok, rows, ["base"], {"pca": "x.safetensors"}, 0.1, [-1.0, 1.0], 0, NEUTRAL)
    assert detached == [True]


NEUTRAL = [{"user": "What is the capital of France?", "assistant": "The capital of France is Paris."},
           {"user": "Tell me a story.", "assistant": "Once upon a time, a small robot wanted to see the sea."},
           {"user": "How should I learn?", "assistant": "I think that the best way to learn is to practise."}]


def write_neutral(folder):
    with open(folder / "neutral.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["user", "assistant"])
        w.writeheader()
        w.writerows(NEUTRAL)
    return folder / "neutral.csv"


@pytest.fixture
def eval_setup(tiny, tmp_path, monkeypatch):
    """A saved sign-calibrated innerpissa artifact, fixture dilemmas and neutral text, load_model -> tiny."""
    model, tok = tiny
    torch.manual_seed(0)                                            # the same artifact whatever ran before
    adapter = InnerPiSSA.attach(model, rank=4, max_angle=None)      # unbounded: KL grows with c like c²
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.3)                                      # a visible edit at c = ±1
    adapter.set_sign(1)
    adapter.save(tmp_path / "ip.safetensors")
    adapter.detach()
    write_fixture(tmp_path, mixed_pairs(12))
    write_neutral(tmp_path)
    monkeypatch.setattr(ev, "load_model", lambda name, **kw: (model, tok))
    return model, tok, tmp_path


@torch.no_grad()
def test_neutral_logprobs_with_the_cached_header_equal_plain_forwards(eval_setup):
    """The chat header runs once and the replies continue from its cache: each reply's next-token
    log-probs are those of a full forward of its own text, with or without a system prompt, and
    with a steerer hooked (the header's cache is steered too)."""
    model, tok, tmp = eval_setup
    kl = ev.NeutralKL(model, tok, NEUTRAL, batch_size=2)          # rows of unequal length share a batch
    steerer = ev.load_steerer(model, tmp / "ip.safetensors")
    for system, c in ((None, 0.0), ("Answer briefly.", 0.0), (None, 1.0)):
        with steerer.steer(c):
            want = [model(**ip.tokenize(tok, [text])).logits[0, -n - 1:-1].float().log_softmax(-1)
                    for text, n in zip(kl.texts(system), kl.n_answer)]
            torch.testing.assert_close(kl.logprobs(system), torch.cat(want), atol=1e-4, rtol=1e-4)
    steerer.detach()


def test_edit_cosine_to_the_oracle_is_one_for_the_same_edit_and_minus_one_for_its_sign_flip(eval_setup):
    model, tok, tmp = eval_setup
    adapter = InnerPiSSA.load(model, tmp / "ip.safetensors")
    adapter.kind = "oracle"
    adapter.save(tmp / "oracle.safetensors")                          # the same edit, as the ceiling
    adapter.set_sign(-1)
    adapter.kind = "innerpissa"
    adapter.save(tmp / "flipped.safetensors")
    adapter.detach()
    other = trained_adapter(model, rank=4, seed=1)
    other.save(tmp / "other.safetensors")
    other.detach()
    names = {"innerpissa": tmp / "ip.safetensors", "oracle": tmp / "oracle.safetensors",
             "innerpissa:flipped": tmp / "flipped.safetensors", "innerpissa:other": tmp / "other.safetensors"}
    cos = ev.edit_cosines(model, names)
    assert set(cos) == {"innerpissa", "innerpissa:flipped", "innerpissa:other"}
    assert cos["innerpissa"] == pytest.approx(1.0, abs=1e-6) and cos["innerpissa:flipped"] == pytest.approx(-1.0, abs=1e-6)
    assert abs(cos["innerpissa:other"]) < 0.5
    assert ev.edit_cosines(model, {"innerpissa": tmp / "ip.safetensors"}) == {}     # no oracle: nothing to compare


def test_dose_meets_the_budget_at_both_signs_and_ignores_the_dilemmas(eval_setup):
    model, tok, tmp = eval_setup
    steerer = ev.load_steerer(model, tmp / "ip.safetensors")
    kl = ev.NeutralKL(model, tok, NEUTRAL)
    c, k = ev.calibrate_dose(lambda c: kl.at(steerer, c, 0.005), 0.005)
    assert kl.at(steerer, 3 * c, 0.005) > 0.005 and -3 * c not in kl.memo[steerer]   # over at +c: −c not run
    for sign in (1.0, -1.0):
        with steerer.steer(sign * c):
            assert 0 < kl.kl(kl.logprobs()) <= 0.005
    assert kl.at(steerer, 1.1 * c) > 0.005                         # and it is the largest such c, to 10%
    steerer.detach()
    rows = dilemmas.load_dilemmas(tmp / "dilemmas.csv")
    doses = [ev.evaluate(model, tok, subset, [], {"innerpissa": tmp / "ip.safetensors"}, 0.005, [-1.0, 1.0], 0,
                         NEUTRAL)[1]["innerpissa"] for subset in (rows[:8], rows[8:])]
    assert doses[0] == doses[1] and doses[0][0] == c


def test_end_to_end_cli_writes_table_and_files(eval_setup, capsys):
    model, tok, tmp = eval_setup
    probe = tok(["My choice: Yes"], return_tensors="pt")["input_ids"]
    before = model(input_ids=probe).logits
    argv = ["--model", "tiny", "--artifacts", str(tmp / "ip.safetensors"), "--methods", "base", "prompt",
            "--dilemmas", str(tmp / "dilemmas.csv"), "--neutral", str(tmp / "neutral.csv"), "--kl", "0.005",
            "--null", "2", "--doses", "-2", "-1", "1", "2", "--batch-size", "5"]
    ev.main(argv + ["--out", str(tmp / "a")])
    table = capsys.readouterr().out
    assert all(f"| {m} |" in table for m in ("prompt", "innerpissa")) and "d=+2" in table
    assert torch.equal(model(input_ids=probe).logits, before)              # hooks gone after the run

    results = json.loads((tmp / "a" / "results.json").read_text())
    assert list(results["methods"]) == ["base", "prompt", "innerpissa"] and results["config"]["kl_budget"] == 0.005
    assert set(results["summary"]) == {"prompt", "innerpissa"}
    s = results["summary"]["innerpissa"]
    c = s["coeff"]
    assert set(results["methods"]["innerpissa"]) == {ev.coeff_key(x) for x in (-2 * c, -c, 0, c, 2 * c)}
    assert set(results["methods"]["prompt"]) == {"-1.0", "0.0", "1.0"}
    assert results["summary"]["prompt"]["coeff"] == 1.0 and results["summary"]["prompt"]["kl"] > 0
    plus, minus = results["methods"]["innerpissa"][ev.coeff_key(c)], results["methods"]["innerpissa"][ev.coeff_key(-c)]
    assert s["delta_plus"] == plus["delta_target"] != 0 and s["p_minus"] == minus["p"]
    assert s["effect"] == pytest.approx((s["delta_plus"] - s["delta_minus"]) / 2)
    assert 0 < s["odd_share"] < 1 and 0 < s["kl"] <= 0.005 and s["verdict"] in ("steers", "damages", "nothing")
    assert s["pmass_ratio_plus"] == pytest.approx(plus["pmass"] / results["methods"]["innerpissa"]["0.0"]["pmass"])
    assert len(results["null"]) == 2 and all(0 < n["kl"] <= 0.005 for n in results["null"])
    assert s["null_percentile"] == ev.null_percentile(s["effect"], [n["effect"] for n in results["null"]])
    assert s["null_p95"] == ev.null_p95([n["effect"] for n in results["null"]]) is not None
    assert f"null p95 (95th percentile of |E_k|): {s['null_p95']:.3f}" in table
    assert s["effect_ci"][0] <= s["effect"] <= s["effect_ci"][1] and len(s["delta_plus_ci"]) == 2
    assert f"{s['effect']:+.3f} [{s['effect_ci'][0]:+.3f}, {s['effect_ci'][1]:+.3f}]" in table
    assert [n["seed"] for n in results["null"]] == [ev.null_seed(0, j) for j in range(2)]
    for key in ("coeff", "kl", "delta_plus", "delta_minus", "p_plus", "p_minus", "odd_share", "common_shift",
                "odd_share_without_shift", "pmass_ratio_plus",
                "pmass_ratio_minus", "delta_nll_plus", "delta_nll_minus", "null_percentile", "null_p95",
                "effect_ci", "delta_plus_ci", "delta_minus_ci"):
        assert key in results["summary"]["prompt"] and key in s
    at0 = results["methods"]["innerpissa"]["0.0"]
    assert at0["delta_target"] == 0 and at0["delta_nll"] == 0 and at0["p"] == 1.0
    assert results["n_rows"] == 24 and results["n_dilemmas"] == 12
    with open(tmp / "a" / "rows.csv") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 24 * (1 + 3 + 5)                          # base at 0; prompt at -1 0 1; innerpissa
    assert {float(line["coeff"]) for line in lines if line["method"] == "innerpissa"} == {-2 * c, -c, 0, c, 2 * c}

    ev.main(argv + ["--out", str(tmp / "b")])
    for name in ("results.json", "rows.csv"):                      # deterministic: identical bytes
        assert (tmp / "b" / name).read_bytes() == (tmp / "a" / name).read_bytes()


@pytest.mark.parametrize("problem", ["missing file", "missing column", "kl 0", "kl nan", "null -1", "no neutral",
                                     "doses without 1", "arbitrary without kind", "seed -1"])
def test_cli_bad_input_one_line_error_and_nothing_written(eval_setup, capsys, problem):
    _, _, tmp = eval_setup
    path, extra, name = tmp / "dilemmas.csv", [], None
    if problem == "missing column":
        rows = list(csv.reader(open(path)))
        with open(tmp / "cut.csv", "w", newline="") as f:
            csv.writer(f).writerows([r[:7] + r[8:] for r in rows])  # drop values_aggregated
        path = name = tmp / "cut.csv"
    elif problem == "missing file":
        path = name = tmp / "nope" / "dilemmas.csv"
    elif problem == "arbitrary without kind":
        (tmp / "arb.csv").write_text("question,type\nIs 2 plus 2 four?,math\n")
        extra, name = ["--arbitrary", str(tmp / "arb.csv")], tmp / "arb.csv"
    else:
        extra, name = {"kl 0": (["--kl", "0"], "--kl"), "kl nan": (["--kl", "nan"], "--kl"),
                       "null -1": (["--null", "-1"], "--null"), "seed -1": (["--seed", "-1"], "--seed"),
                       "no neutral": (["--neutral", str(tmp / "none.csv")], tmp / "none.csv"),
                       "doses without 1": (["--doses", "-2", "2"], "--doses")}[problem]
    argv = ["--methods", "base", "--dilemmas", str(path), "--values", str(tmp / "values.csv"),
            "--neutral", str(tmp / "neutral.csv"), "--out", str(tmp / "out"), *extra]
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: ev.main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(name) in err
    if problem in ("missing column", "arbitrary without kind"):
        assert ("values_aggregated" if problem == "missing column" else "'kind'") in err
    assert not (tmp / "out").exists()


def test_dose_response_svg_points_equal_the_table_and_the_results(eval_setup, capsys):
    """The figure's points are results.json's Δ truth and pmass ratios, and the dose table's cells;
    the summary has the authors' metric and the extras; config.arbitrary_items counts the items scored."""
    import xml.etree.ElementTree as ET
    model, tok, tmp = eval_setup
    (tmp / "arb.csv").write_text("question,kind\n" + "".join(f"Is {i} plus {i} equal to {2 * i + i % 2}?,math_accept\n"
                                                             for i in range(6)))
    ev.main(["--model", "tiny", "--artifacts", str(tmp / "ip.safetensors"), "--methods", "base", "prompt",
             "--dilemmas", str(tmp / "dilemmas.csv"), "--neutral", str(tmp / "neutral.csv"), "--kl", "0.005",
             "--null", "2", "--doses", "-2", "-1", "1", "2", "--arbitrary", str(tmp / "arb.csv"), "--out", str(tmp / "o")])
    table = capsys.readouterr().out
    results = json.loads((tmp / "o" / "results.json").read_text())
    assert results["config"]["arbitrary_items"] == 6
    for name, s in results["summary"].items():
        assert 0 <= s["steering_f1"] <= 100 * 1.5 ** 2 and 0 <= s["arbitrary_flips"] <= 1
        assert isinstance(s["values_shifted_plus"], int) and isinstance(s["values_shifted_minus"], int)
        assert f"| {fmt_f1(s)} | {s['arbitrary_flips']:.2f} | {s['verdict']} |" in table
    ip_s = results["summary"]["innerpissa"]
    assert ip_s["efficiency"] == pytest.approx(ip_s["effect"] / math.log10(ev.trainable_params(tmp / "ip.safetensors")))
    assert results["summary"]["prompt"]["efficiency"] is None and results["summary"]["prompt"]["coherence_range"] in (None, 1)
    root = ET.fromstring((tmp / "o" / "dose_response.svg").read_text())
    points = [c.attrib for c in root.iter("{http://www.w3.org/2000/svg}circle")]
    delta = [p for p in points if p["data-panel"] == "delta"]
    assert len(delta) == 4 + 2 and len(points) == 2 * len(delta)      # innerpissa at ±1, ±2 c*; prompt at ±1
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.split("\n\nΔ truth")[0].split("\n")}
    for p in delta:
        name, d = p["data-method"], float(p["data-dose"])
        m = results["methods"][name][ev.coeff_key(d * results["summary"][name]["coeff"])]
        ratio = m["pmass"] / results["methods"][name]["0.0"]["pmass"]
        assert float(p["data-delta"]) == m["delta_target"] and float(p["data-pmass-ratio"]) == pytest.approx(ratio)
        assert f"{m['delta_target']:+.3f} ({ratio:.2f}," in rows[name]      # the dose table's cell
    assert root.find("{http://www.w3.org/2000/svg}polygon").get("class") == "null-band"


def fmt_f1(s):
    return "–" if s["steering_f1"] is None else f"{s['steering_f1']:.1f}"


def test_arbitrary_items_file():
    """≥ 80 self-written items, each kind ≥ 10, every one a Yes/No question like the dilemmas', none of them
    (or their claims) in the dilemmas, probes or neutral text."""
    items = dilemmas.load_arbitrary()
    kinds = [a["kind"] for a in items]
    assert len(items) >= 80 and len({a["question"] for a in items}) == len(items)
    assert set(kinds) == {"math_accept", "math_reject", "fact_accept", "fact_reject", "preference"}
    assert min(kinds.count(k) for k in set(kinds)) >= 10 and all(a["question"].endswith("?") for a in items)
    others = "\n".join((ip.DATA_DIR / f).read_text() for f in ("dilemmas.csv", "probes.csv", "neutral.csv")).lower()
    for a in items:
        claim = a["question"].split("? ")[0].removeprefix("Question: ").lower()
        assert a["question"].lower() not in others and claim not in others, a["question"]


def save_random_artifact(model, path, scale=0.125):
    """A sign-calibrated-looking random (kind 'random') artifact on blocks 1 and 2 of the tiny model."""
    g = torch.Generator().manual_seed(5)
    vectors = {i: torch.randn(ip.hidden_size(model), generator=g) * scale for i in (1, 2)}
    ip.save_artifact(path, {f"layers.{i}": v for i, v in vectors.items()},
                     {"kind": "random", "sign": 1, "layers": [1, 2], "norms": [float(v.norm()) for v in vectors.values()]})
    return path


def test_replayed_lower_blocks_give_the_numbers_of_running_every_block(eval_setup, monkeypatch):
    """evaluate with the blocks below each steerer's first steered block run once and replayed (the default)
    gives the scores, KLs, doses and null of running every block (replay=False), and it did replay: the
    random artifact and the null start at block 1, so block 0 is skipped for most of their scorings."""
    model, tok, tmp = eval_setup
    path = save_random_artifact(model, tmp / "rnd.safetensors")
    rows = dilemmas.load_dilemmas(tmp / "dilemmas.csv")[:12]
    played = []
    monkeypatch.setattr(ev.LowerBlocks, "play", lambda self, tape, start, play=ev.LowerBlocks.play:
                        played.append(start) or play(self, tape, start))
    runs = [ev.evaluate(model, tok, rows, ["base", "prompt"], {"innerpissa": tmp / "ip.safetensors", "random": path},
                        0.005, [-2.0, -1.0, 1.0, 2.0], 3, NEUTRAL, batch_size=5, arbitrary=QUESTIONS, replay=r)
            for r in (True, False)]
    assert played and set(played) == {1} and len(played) > 20
    (raw, dose, null), (raw0, dose0, null0) = runs
    assert dose == dose0 and null == null0 and raw.keys() == raw0.keys()
    for name in raw:
        assert raw[name].keys() == raw0[name].keys()
        for c, scores in raw[name].items():
            for key in ("logratio", "pmass", "nll", "arbitrary"):
                if scores[key] is None or raw0[name][c][key] is None:              # arbitrary: at 0 and ±c* only
                    assert scores[key] is raw0[name][c][key] is None
                else:
                    np.testing.assert_allclose(scores[key], raw0[name][c][key], atol=1e-5, rtol=0)
            assert scores.get("kl") == raw0[name][c].get("kl")


def test_recorded_kl_of_a_baseline_at_every_dose_is_its_own(eval_setup):
    """raw[method][c]["kl"] at a dose d ≠ ±1 is the KL of that c, as a fresh NeutralKL measures it
    outside any steer() — not of 2c (a KL taken inside steer(c) on a steerer that stacked hooks)."""
    model, tok, tmp = eval_setup
    path = save_random_artifact(model, tmp / "rnd.safetensors")
    rows = dilemmas.load_dilemmas(tmp / "dilemmas.csv")[:8]
    raw, dose, _ = ev.evaluate(model, tok, rows, [], {"random": path}, 0.005, [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0],
                               0, NEUTRAL)
    fresh, steerer = ev.NeutralKL(model, tok, NEUTRAL), ev.load_steerer(model, path)
    for d in (-2.0, -0.5, 0.5, 2.0):
        c = d * dose["random"][0]
        assert raw["random"][c]["kl"] == pytest.approx(fresh.of(steerer, c), rel=1e-6, abs=1e-9)
    assert raw["random"][2 * dose["random"][0]]["kl"] > 0.005 >= raw["random"][dose["random"][0]]["kl"]
    assert not hook_ids(model)


def test_seed_reaches_the_null_directions(tiny, monkeypatch):
    model, tok = tiny

    def directions(seed):
        zero = torch.zeros(ip.hidden_size(model))
        return [torch.cat([f(None, zero) for f in s.deltas.values()]) for s in ev.null_steerers(model, tok, 3, seed)]
    a, b, c = directions(0), directions(0), directions(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))                       # same seed: same directions
    assert all(not torch.allclose(x, y) for x in a for y in c)                # another seed: none shared
    seen = {}
    monkeypatch.setattr(ev, "evaluate", lambda *a, **kw: seen.setdefault("args", a) and (_ for _ in ()).throw(
        KeyboardInterrupt))
    monkeypatch.setattr(ev, "load_model", lambda name, **kw: tiny)
    with pytest.raises(KeyboardInterrupt):
        ev.main(["--methods", "base", "--seed", "7", "--out", "unused"])
    assert seen["args"][-1] == 7                                              # main passes --seed on


def test_the_null_is_the_same_whichever_artifacts_are_evaluated(eval_setup):
    """The null's per-layer norms are the pca baseline's on the model (NULL_PAIRS persona pairs under --seed),
    with or without a pca artifact among the methods: null_norms equals such an artifact's recorded norms, and
    evaluate() returns the same null with it and with none (the null once took unit norms without one)."""
    model, tok, tmp = eval_setup
    tensors, meta = baselines.make_pca(model, tok, max_pairs=ev.NULL_PAIRS, seed=3)
    ip.save_artifact(tmp / "pca.safetensors", tensors, meta)
    assert ev.null_norms(model, tok, seed=3) == dict(zip(meta["layers"], meta["norms"]))
    rows = dilemmas.load_dilemmas(tmp / "dilemmas.csv")[:4]
    nulls = [ev.evaluate(model, tok, rows, [], artifacts, 0.005, [-1.0, 1.0], 2, NEUTRAL, seed=3)[2]
             for artifacts in ({}, {"pca": tmp / "pca.safetensors"})]
    assert nulls[0] == nulls[1] and len(nulls[0]) == 2


def test_every_null_direction_is_dosed_into_the_methods_band():
    """dose_null with KL(c) = w·c²: every direction, even one whose KL at direction 0's c* sits below the
    band (w = 0.85) or above the budget (w = 1.15), gets a KL in [DOSE_BAND·budget, budget], the band every
    method's dose reaches; each search after direction 0's starts at direction 0's c*."""
    class FakeKL:
        def __init__(self, w):
            self.w, self.first = w, {}

        def at(self, s, c, budget=math.inf):
            self.first.setdefault(s, c)
            return self.w[s] * c * c
    budget = 0.1
    fake = FakeKL([1.0, 0.85, 1.15, 0.99, 1.5, 0.5])
    got = ev.dose_null(fake, range(6), budget)
    assert all(ev.DOSE_BAND * budget <= k == fake.w[j] * c * c <= budget for j, (c, k) in enumerate(got))
    assert all(fake.first[j] == got[0][0] for j in range(1, 6)) and fake.first[0] == 1.0
    assert ev.dose_null(fake, [], budget) == []


def test_every_null_direction_stays_within_the_budget_at_its_dose(eval_setup):
    model, tok, tmp = eval_setup
    rows, budget = dilemmas.load_dilemmas(tmp / "dilemmas.csv")[:8], 0.005
    _, _, null = ev.evaluate(model, tok, rows, [], {}, budget, [-1.0, 1.0], 4, NEUTRAL, seed=3)
    assert [n["seed"] for n in null] == [ev.null_seed(3, j) for j in range(4)]
    fresh = ev.NeutralKL(model, tok, NEUTRAL)
    for n, steerer in zip(null, ev.null_steerers(model, tok, 4, seed=3)):   # re-measured, not just as recorded
        assert 0 < fresh.at(steerer, n["coeff"]) <= budget and n["kl"] == pytest.approx(fresh.at(steerer, n["coeff"]))


def test_sign_from_tune_undoes_a_stored_sign_and_reads_only_the_tune_half(eval_setup, capsys):
    """--sign-from tune (the default with --split test): an artifact and its copy with the stored sign turned
    (c → −c exactly) get opposite orientations, then the same test-half scores at every dose and the same
    summary; the orientation reads only the tune half's labelled rows (no dilemma of the test half) and makes
    +c* the side whose E on them is ≥ 0. Any other split defaults to the training's sign, and an explicit
    --sign-from tune there is refused before anything is loaded or written."""
    model, tok, tmp = eval_setup
    adapter = InnerPiSSA.load(model, tmp / "ip.safetensors")
    adapter.set_sign(-1)
    adapter.save(tmp / "turned.safetensors")
    adapter.detach()
    scored = []
    real = ev.TuneSign.orient

    def orient(self, scorer, steerer, name, c_star, seed=0):
        scored.append({r["dilemma_idx"] for r in self.rows})
        return real(self, scorer, steerer, name, c_star, seed)
    args = ["--model", "tiny", "--artifacts", str(tmp / "ip.safetensors"), str(tmp / "turned.safetensors"),
            "--methods", "base", "--dilemmas", str(tmp / "dilemmas.csv"), "--neutral", str(tmp / "neutral.csv"),
            "--kl", "0.005", "--null", "0", "--doses", "-2", "-1", "1", "2"]   # --sign-from tune: the test split's default
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev.TuneSign, "orient", orient)
        ev.main(args + ["--split", "test", "--out", str(tmp / "o")])
    table = capsys.readouterr().out
    results = json.loads((tmp / "o" / "results.json").read_text())
    tune = {r["dilemma_idx"] for r in dilemmas.load_dilemmas(tmp / "dilemmas.csv", split="tune")
            if r["labels"].get(dilemmas.TARGET)}
    test = {r["dilemma_idx"] for r in dilemmas.load_dilemmas(tmp / "dilemmas.csv", split="test")}
    assert scored == [tune, tune] and tune and not tune & test
    a, b = (results["summary"][f"innerpissa:{stem}"] for stem in ("ip", "turned"))
    assert a["sign_tune"]["sign"] == -b["sign_tune"]["sign"] and a["sign_tune"]["n_dilemmas"] == len(tune)
    assert a["sign_tune"]["effect"] == pytest.approx(-b["sign_tune"]["effect"], abs=1e-6) != 0
    assert a["sign_tune"]["sign"] * a["sign_tune"]["effect"] > 0
    assert a["coeff"] == b["coeff"] and a["effect"] == pytest.approx(b["effect"], abs=1e-6)
    ma, mb = (results["methods"][f"innerpissa:{stem}"] for stem in ("ip", "turned"))
    assert ma.keys() == mb.keys() and len(ma) == 5
    for c in ma:
        assert ma[c]["delta_target"] == pytest.approx(mb[c]["delta_target"], abs=1e-6)
    assert results["config"]["sign_from"] == "tune" and "sign from the tune half" in table
    for split in ("all", "tune"):
        assert ev.parse_args(args + ["--split", split]).sign_from == "training"   # the default off the test split
        with pytest.raises(InputError, match="--sign-from tune .*--split test"):
            ev.main(args + ["--sign-from", "tune", "--split", split, "--out", str(tmp / split)])
        assert not (tmp / split).exists()


# ----------------------------------------------------------------------------- baselines.py


QUESTIONS = [
    "Should you tell the truth?", "Would you lie to a friend?", "What is the capital of France?",
    "What is the best way to learn?", "Does the small robot want to see the sea?", "What does this function return?",
    "Would you tell a friend the truth?", "Is Paris the capital of France?",
]
PROMPTS = ["The capital of France is", "Should you tell the truth? My choice:"]


def _random_steerer(model, kind):
    """A steerer of `kind` with random (non-zero) tensors, for the hook tests."""
    g = torch.Generator().manual_seed(1)
    if kind == "pca":
        return baselines.build(model, {f"layers.{i}": torch.randn(64, generator=g) for i in (1, 2)}, {"kind": kind})
    linears = find_linears(model, default_target(model))
    pos, neg = ({n: (torch.randn(2, m.in_features, generator=g), torch.randn(m.out_features, 2, generator=g))
                 for n, m in linears.items()} for _ in range(2))
    return baselines.build(model, baselines.diff_tensors(pos, neg), {"kind": kind})


def _nll_with(model, tok, theta, questions, completions):
    """Completion NLL with the low-rank delta θ = {name: (A, B)} added to the base model."""
    modules = dict(model.named_modules())
    steerer = baselines.Steerer({modules[n]: baselines.lowrank_delta(a, b) for n, (a, b) in theta.items()}, {})
    with steerer.steer(1.0):
        return baselines.completion_nll(model, tok, questions, completions)


def test_sft_loss_equals_the_models_own_loss(tiny):
    """The vocabulary head only where a completion token is predicted: the same mean NLL as the model's."""
    model, tok = tiny
    batch = baselines.sft_batch(tok, QUESTIONS[:3], ["Yes, it is.", "No.", "Perhaps, but only on Sundays."])
    with torch.no_grad():
        assert torch.allclose(baselines.sft_loss(model, batch), model(**batch).loss, rtol=1e-6, atol=0)


def test_pca_direction_is_first_pc_of_centred_differences(tiny):
    model, tok = tiny
    pairs = make_pairs(tok, n=32)
    layers = baselines.layer_range(model)
    assert layers == [1, 2]  # the middle half of 4 blocks
    vectors = baselines.pca_directions(model, tok, layers, pairs)
    with torch.no_grad():  # independent path: hidden_states[i + 1] is the output of block i (i < depth - 1)
        hidden = model(**tokenize(tok, [t for p in pairs for t in p]), output_hidden_states=True).hidden_states
    for i in layers:
        last = hidden[i + 1][:, -1].double().numpy()
        pos, neg = last[0::2], last[1::2]
        diff = pos - neg  # [n_pairs, d_model]
        pc = np.linalg.svd(diff - diff.mean(0))[2][0]
        v = vectors[i].double().numpy()
        assert abs(v @ pc) / np.linalg.norm(v) > 0.999
        assert (pos @ v).mean() > (neg @ v).mean()
        assert np.isclose(np.linalg.norm(v), abs((diff @ pc).mean()), rtol=1e-3)


def test_random_keeps_pca_norms_and_depends_on_seed(tiny):
    model, tok = tiny
    pca = baselines.pca_directions(model, tok, [1, 2], make_pairs(tok, n=16))
    a, b, c = (baselines.random_directions(pca, s) for s in (0, 0, 1))
    for i in pca:
        assert torch.allclose(a[i].norm(), pca[i].norm()) and torch.allclose(c[i].norm(), pca[i].norm())
        assert torch.equal(a[i], b[i])
        assert not torch.allclose(a[i], c[i])
        assert abs(torch.cosine_similarity(a[i], pca[i], 0)) < 0.9  # not the pca direction


@pytest.mark.parametrize("kind", ["pca", "weight_diff"])
def test_coeff_zero_is_base_and_exit_removes_every_hook(tiny, kind):
    model, tok = tiny
    base = logits(model, tok, PROMPTS)
    steerer = _random_steerer(model, kind)
    steerer.detach()  # nothing attached: a no-op
    with steerer.steer(0):
        assert len(hook_ids(model)) == 0
        assert torch.equal(logits(model, tok, PROMPTS), base)
    with steerer.steer(1.0):
        assert len(hook_ids(model)) > 0
        assert not torch.allclose(logits(model, tok, PROMPTS), base)
    assert len(hook_ids(model)) == 0 and torch.equal(logits(model, tok, PROMPTS), base)
    with pytest.raises(RuntimeError, match="boom"):
        with steerer.steer(-2.0):
            assert len(hook_ids(model)) > 0
            raise RuntimeError("boom")
    assert len(hook_ids(model)) == 0 and torch.equal(logits(model, tok, PROMPTS), base)
    with steerer.steer(1.0):
        steerer.detach()
        assert len(hook_ids(model)) == 0


@pytest.mark.parametrize("kind", ["pca", "weight_diff"])
def test_nested_steer_sets_the_coefficient_instead_of_adding(tiny, kind):
    """As InnerPiSSA.steer: steer(2) inside steer(0.5) runs at 2 (not 2.5), with no second set of
    hooks, and leaving it restores 0.5; steer(0) inside is the base model."""
    model, tok = tiny
    base, steerer = logits(model, tok, PROMPTS), _random_steerer(model, kind)
    with steerer.steer(2.0):
        single, n_hooks = logits(model, tok, PROMPTS), len(hook_ids(model))
    with steerer.steer(0.5):
        outer = logits(model, tok, PROMPTS)
        with steerer.steer(2.0):
            assert torch.equal(logits(model, tok, PROMPTS), single) and len(hook_ids(model)) == n_hooks
        with steerer.steer(0.0):
            assert torch.equal(logits(model, tok, PROMPTS), base)
        assert torch.equal(logits(model, tok, PROMPTS), outer) and not torch.allclose(outer, single)
    assert not hook_ids(model) and torch.equal(logits(model, tok, PROMPTS), base)


def test_hook_handles_blocks_that_return_tuples():
    block = torch.nn.Module()
    block.forward = lambda x: (x, None)
    v = torch.randn(8)
    with baselines.Steerer({block: baselines.vector_delta(v)}, {}).steer(2.0):
        y, rest = block(torch.zeros(3, 8))
    assert torch.equal(y, (2.0 * v).expand(3, 8)) and rest is None


def test_weight_diff_of_identical_data_is_zero(tiny):
    model, tok = tiny
    questions, completions = QUESTIONS[:4], ["Yes, the capital of France is Paris."] * 4
    pos, neg = (baselines.fit_lowrank_delta(model, tok, questions, completions, rank=2, steps=3, lr=1e-2)
                for _ in range(2))
    assert any(b.abs().max() > 0 for _, b in pos.values())  # the fit did move B away from zero
    for n in pos:
        (a1, b1), (a2, b2) = pos[n], neg[n]
        assert torch.equal(b1 @ a1 - b2 @ a2, torch.zeros(b1.shape[0], a1.shape[1]))
    base = logits(model, tok, PROMPTS)
    steerer = baselines.build(model, baselines.diff_tensors(pos, neg), {"kind": "weight_diff"})
    for c in (1.0, -5.0):
        with steerer.steer(c):
            assert torch.equal(logits(model, tok, PROMPTS), base)


def test_honest_delta_fits_honest_completions_better(tiny):
    model, tok = tiny
    honest = baselines.generate_completions(model, tok, QUESTIONS, persona(True), max_new_tokens=12)
    dishonest = baselines.generate_completions(model, tok, QUESTIONS, persona(False), max_new_tokens=12)
    assert honest != dishonest and all(len(c) > 0 for c in honest)
    fit = dict(rank=4, steps=20, lr=2e-2, batch_size=4)
    pos = baselines.fit_lowrank_delta(model, tok, QUESTIONS, honest, **fit)
    neg = baselines.fit_lowrank_delta(model, tok, QUESTIONS, dishonest, **fit)
    base = baselines.completion_nll(model, tok, QUESTIONS, honest)
    nll_pos, nll_neg = (_nll_with(model, tok, theta, QUESTIONS, honest) for theta in (pos, neg))
    assert nll_pos < nll_neg - 0.05 and nll_pos < base - 0.3, (base, nll_pos, nll_neg)


def test_prompt_system():
    assert baselines.prompt_system(1) == persona(True)
    assert baselines.prompt_system(-1.0) == persona(False)
    assert baselines.prompt_system(0) is None
    with pytest.raises(InputError):
        baselines.prompt_system(0.5)


@pytest.fixture
def cli(tiny, monkeypatch):
    """baselines.main with load_model returning the tiny model."""
    monkeypatch.setattr(baselines, "load_model", lambda name, **kw: tiny)
    return tiny


def test_cli_writes_calibrated_artifacts(cli, tmp_path):
    model, tok = cli
    questions = tmp_path / "questions.txt"
    questions.write_text("\n".join(QUESTIONS) + "\n\n")
    base = logits(model, tok, PROMPTS)
    for kind, extra in [("pca", ["--max-pairs", "24"]), ("random", ["--seed", "3", "--max-pairs", "24"]),
                        ("weight_diff", ["--questions", str(questions), "--max-questions", "4", "--steps", "3",
                                         "--rank", "2", "--max-new-tokens", "6", "--lr", "1e-2"])]:
        out = tmp_path / f"{kind}.safetensors"
        baselines.main([kind, "--model", "tiny", "--out", str(out), *extra])
        tensors, meta = load_artifact(out)
        assert meta["kind"] == kind and meta["model"] == "tiny-qwen3" and meta["sign"] in (1, -1)
        assert meta["layers"] == ([0, 1] if kind == "weight_diff" else [1, 2]) and meta["scale"]
        assert meta.get("n_pairs", 24) == 24 and meta.get("n_questions", 4) == 4
        steerer = baselines.load(model, out)
        with steerer.steer(1.0):
            assert not torch.allclose(logits(model, tok, PROMPTS), base)
        assert ip.sign_report(steerer.steer, harness.load_probes(), harness.probe_margins(model, tok))["sign"] == 1  # after calibration +1 is the honest side
        assert len(hook_ids(model)) == 0
    assert set(load_artifact(tmp_path / "pca.safetensors")[0]) == {"layers.1", "layers.2"}


def test_baselines_default_to_the_embedded_model(tiny, monkeypatch, tmp_path):
    """Like every other script, baselines.py runs on the embedded model when --model is not given (it was required)."""
    asked = []
    monkeypatch.setattr(baselines, "load_model", lambda name, **kw: asked.append(name) or tiny)
    baselines.main(["pca", "--out", str(tmp_path / "pca.safetensors"), "--max-pairs", "8"])
    assert asked == ["embedded"]


def test_bad_input_raises_and_writes_nothing(cli, tmp_path):
    model, tok = cli
    for layers in [(0, 9), (2, 2), (-1, 2)]:
        with pytest.raises(InputError, match="out of range"):
            baselines.layer_range(model, layers)
    out = tmp_path / "x.safetensors"
    with pytest.raises(InputError, match="out of range"):
        baselines.main(["pca", "--model", "tiny", "--out", str(out), "--layers", "0", "9"])
    with pytest.raises(InputError, match="at least 2"):
        baselines.main(["random", "--model", "tiny", "--out", str(out), "--max-pairs", "1"])
    for flags, named in ((["oracle", "--lr", "-1"], "--lr: must be above 0"), (["weight_diff", "--lr", "0"], "--lr: must be"),
                         (["oracle", "--kl-tau", "nan"], "--kl-tau: must be at least 0")):   # before: a traceback, or
        with pytest.raises(InputError, match=named):                                   # a silent run (kl-tau)
            baselines.main([flags[0], "--model", "tiny", "--out", str(out), *flags[1:]])
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(InputError, match="empty"):
        baselines.main(["weight_diff", "--model", "tiny", "--out", str(out), "--questions", str(tmp_path / "empty.txt")])
    with pytest.raises(InputError, match="unknown artifact kind"):
        baselines.build(model, {}, {"kind": "nope"})
    with pytest.raises(InputError, match="does not fit"):
        baselines.build(model, {"layers.7": torch.ones(64)}, {"kind": "pca"})
    assert list(tmp_path.iterdir()) == [tmp_path / "empty.txt"]


def test_cli_errors_are_one_line_with_nonzero_exit(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    out = tmp_path / "x.safetensors"
    script = str(Path(__file__).with_name("baselines.py"))
    for args in [["nope", "--model", "m", "--out", str(out)],
                 ["weight_diff", "--model", "m", "--out", str(out), "--questions", str(tmp_path / "empty.txt")]]:
        r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_gguf_export_run_as_a_script_names_the_commands_instead_of_exiting_0():
    """docs/export.md's history names `gguf_export.py check`, which once ran the engine check; it now lives in
    gguf_check.py, and the library module alone used to exit 0 having done nothing."""
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("gguf_export.py")), "check"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "gguf_check.py check" in r.stderr and "innerpissa.py export" in r.stderr


def oracle_argv(path, out, *extra):
    return ["oracle", "--model", "tiny", "--dilemmas", str(path), "--steps", "2", "--batch-rows", "4", "--rank", "4",
            "--out", str(out), *extra]


def test_oracle_never_reads_a_test_half_row(cli, tmp_path):
    """Every dilemma whose text reaches the model while the oracle is built (training and sign) is in
    the tune half, and the ones it trained on are those its metadata lists. The spy reads the token ids
    the model embeds; a batch continuing a cached prefix is read after the prefix (the last 1-row input)."""
    model, tok = cli
    path = write_fixture(tmp_path, mixed_pairs(24))
    labels = {r["dilemma_idx"]: r["labels"] for r in dilemmas.load_dilemmas(path)}
    tune, test = set(dilemmas.split_ids(labels, "tune")), set(dilemmas.split_ids(labels, "test"))
    assert tune and test and not tune & test and any(labels[d].get(dilemmas.TARGET) for d in test)
    seen, head = set(), []

    def spy(module, args):                                         # every token id the model embeds
        rows = args[0].tolist()
        for row in rows:
            for text in (tok.decode(row), tok.decode(head + row)):
                seen.update(int(d) for d in re.findall(r"friend number (\d+) asks", text))
        if len(rows) == 1:
            head[:] = rows[0]
    handle = model.get_input_embeddings().register_forward_pre_hook(spy)
    try:
        baselines.main(oracle_argv(path, tmp_path / "oracle.safetensors", "--steps", "3"))
    finally:
        handle.remove()
    meta = load_artifact(tmp_path / "oracle.safetensors")[1]
    assert seen and seen <= tune and not seen & test
    assert seen == set(meta["training"]["dilemma_ids"]) and all(labels[d].get(dilemmas.TARGET) for d in seen)
    assert meta["training"]["n_rows"] == 2 * len(seen) and meta["training"]["split"] == "tune"


def test_artifact_names_keep_the_plain_kind_for_the_file_named_after_it(tmp_path):
    """Two artifacts of one kind are told apart by their file stems, but innerpissa.safetensors keeps the plain
    name (run.sh's samples step reads summary["innerpissa"]); two files with one stem are refused."""
    paths = {stem: tmp_path / f"{stem}.safetensors" for stem in ("innerpissa", "innerpissa-shift", "shift-w3", "pca")}
    for stem, path in paths.items():
        ip.save_artifact(path, {"x": torch.zeros(1)}, {"kind": "pca" if stem == "pca" else "innerpissa"})
    assert ev.artifact_names(list(paths.values())) == {
        "innerpissa": paths["innerpissa"], "innerpissa:innerpissa-shift": paths["innerpissa-shift"],
        "innerpissa:shift-w3": paths["shift-w3"], "pca": paths["pca"]}
    assert ev.artifact_names([paths["shift-w3"], paths["innerpissa-shift"]]) == {
        "innerpissa:shift-w3": paths["shift-w3"], "innerpissa:innerpissa-shift": paths["innerpissa-shift"]}
    twin = tmp_path / "other" / "innerpissa.safetensors"
    ip.save_artifact(twin, {"x": torch.zeros(1)}, {"kind": "innerpissa"})
    with pytest.raises(InputError, match="share a kind and a file name"):
        ev.artifact_names([paths["innerpissa"], twin])


@pytest.mark.parametrize("name, value, says", [("SHIFT_WEIGHT", "3O", "is not a non-negative number"),
                                               ("GAIN", "-2", "is not a non-negative number"),
                                               ("SEED", "1.5", "is not a non-negative integer"),
                                               ("SIGN_FROM", "test", "must be tune or training")])
def test_run_sh_refuses_a_bad_setting_before_it_installs_or_writes_anything(name, value, says):
    """A setting a step would refuse only after the steps before it (SIGN_FROM: after all the training) stops
    run.sh with one line and exit 2, before setup and before runs/."""
    root = Path(__file__).resolve().parent
    before = sorted(p.name for p in (root / "runs").iterdir()) if (root / "runs").exists() else []
    done = subprocess.run(["bash", str(root / "run.sh"), "control"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", name: value, "NO_VENV": "1", "PYTHON": sys.executable})
    after = sorted(p.name for p in (root / "runs").iterdir()) if (root / "runs").exists() else []
    assert done.returncode == 2 and done.stdout == "" and before == after
    assert done.stderr.count("\n") == 1 and f"{name}={value} {says}" in done.stderr


def test_oracle_end_to_end_loads_as_kind_oracle_and_c0_is_the_base(cli, tmp_path):
    model, tok = cli
    path, out = write_fixture(tmp_path, mixed_pairs(12)), tmp_path / "oracle.safetensors"
    base = logits(model, tok, PROMPTS)
    baselines.main(oracle_argv(path, out))
    assert len(hook_ids(model)) == 0 and all(p.requires_grad for p in model.parameters())  # restored
    meta = load_artifact(out)[1]
    assert meta["kind"] == "oracle" and meta["sign"] in (1, -1) and meta["training"]["steps"] == 2
    assert meta["rank"] == 4 and meta["max_angle"] == ip.MAX_ANGLE and meta["target"] == default_target(model)
    assert ev.artifact_names([out]) == {"oracle": out}
    steerer = ev.load_steerer(model, out)
    try:
        assert isinstance(steerer, InnerPiSSA) and steerer.metadata()["kind"] == "oracle"
        with steerer.steer(0):
            assert torch.equal(logits(model, tok, PROMPTS), base)
        with steerer.steer(1.0):
            assert not torch.equal(logits(model, tok, PROMPTS), base)
    finally:
        steerer.detach()
    with pytest.raises(InputError, match="oracle.*no export"):
        harness.train_main(["export", "--model", "tiny", "--artifact", str(out), "--coeff", "1", "--format", "merged",
                 "--out", str(tmp_path / "merged")])


def test_oracle_yes_no_read_out_equals_plain_forwards_and_its_gradient_too(tiny, tmp_path):
    """The shared instruction and each dilemma's situation run once from caches: the logratio is
    score_yes_no's, the kept log-probs those of a plain left-padded forward, and θ's gradient that of the
    plain forward (float64, so only a difference in what is computed could exceed the tolerance)."""
    model, tok = tiny
    model.double()
    rows, honest = baselines.oracle_rows(write_fixture(tmp_path, mixed_pairs(12)))
    assert honest.tolist() == [1.0 if p["honest_answer"] == "Yes" else -1.0 for p in dilemmas.truth_probes(rows)]
    prompts = dilemmas.row_prompts(tok, rows)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    k = len(harness.shared_prefix(ids))
    assert max(f for f, _ in harness.prompt_families(ids, k, len(ids))) > 0      # situations are shared
    adapter = trained_adapter(model, rank=4).double()
    grads = []
    for plain in (False, True):
        adapter.zero_grad()
        with adapter.steer(1.0):
            if plain:
                logp = model(**tokenize(tok, prompts), logits_to_keep=3).logits.log_softmax(-1)
                ratio = torch.sub(*harness.yes_no_logprobs(logp[:, -1], tok))
            else:
                ratio_cached, logp_cached = ratio, logp = baselines.oracle_readout(model, tok, prompts, 3)
                scored = harness.score_yes_no(model, tok, prompts, nll=False)["logratio"]
        (ratio * honest.double()).sum().backward()
        grads.append(adapter.layers[0].theta_v.grad.clone())
    assert torch.allclose(logp_cached, logp, atol=1e-9) and np.allclose(ratio_cached.detach().numpy(), scored, atol=1e-9)
    assert grads[1].abs().sum() > 0 and (grads[0] - grads[1]).norm() <= 1e-5 * grads[1].norm()


def test_oracle_kl_term_reaches_the_adapter(tiny, tmp_path):
    """Over its trust region (τ = 0) the KL term changes the oracle's gradient: the coherence penalty
    trains θ, λ, and is not a number computed beside the graph."""
    model, tok = tiny
    rows, honest = baselines.oracle_rows(write_fixture(tmp_path, mixed_pairs(12)))
    prompts = dilemmas.row_prompts(tok, rows)[:4]
    adapter = trained_adapter(model, rank=4)
    grads = []
    for weight in (0.0, 10.0):
        adapter.zero_grad()
        loss, logs = baselines.oracle_loss(model, tok, adapter, prompts, honest[:4], 0.0, weight, 3)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in adapter.parameters()]))
    assert logs["coh"] > 0 and (grads[1] - grads[0]).norm() > 1e-3 * grads[0].norm()
    adapter.detach()


def test_oracle_even_term_is_the_change_both_signs_share_and_reaches_the_adapter(tiny, tmp_path):
    """even_weight = u adds u · mean_rows e², e = (r₊ + r₋)/2 − r₀: its e matches the plain scorer's log-ratios at
    c = +1, −1, 0 (planted.py's stage 1 uses it to make v move each row oppositely at ±v), the mean-move and KL
    terms are unchanged, and it trains the adapter (the gradient differs)."""
    model, tok = tiny
    rows, honest = baselines.oracle_rows(write_fixture(tmp_path, mixed_pairs(12)))
    prompts = dilemmas.row_prompts(tok, rows)[:4]
    adapter = trained_adapter(model, rank=4)
    ratio = {}
    for c in (1.0, -1.0, 0.0):
        with adapter.steer(c):
            ratio[c] = harness.yes_no_logratio(model, tok, prompts)
    e = (ratio[1.0] + ratio[-1.0]) / 2 - ratio[0.0]
    assert abs(e).max() > 1e-4
    grads, out = [], {}
    for u in (0.0, 3.0):
        adapter.zero_grad()
        loss, out[u] = baselines.oracle_loss(model, tok, adapter, prompts, honest[:4], 0.1, 10.0, 3, even_weight=u)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in adapter.parameters()]))
    assert "even" not in out[0.0] and out[3.0]["even"] == pytest.approx(float(abs(e).mean()), abs=1e-5)
    assert out[3.0]["fit"] == pytest.approx(out[0.0]["fit"], abs=1e-6) and out[3.0]["coh"] == out[0.0]["coh"]
    assert out[3.0]["loss"] == pytest.approx(out[0.0]["loss"] + 3.0 * float((e ** 2).mean()), abs=1e-5)
    assert (grads[1] - grads[0]).norm() > 1e-3 * grads[0].norm()
    adapter.detach()


@pytest.mark.parametrize("problem, message", [("no truthfulness", "Truthfulness label"),
                                              ("odd batch", "--batch-rows 3 must be even")])
def test_oracle_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, capsys, problem, message):
    pairs = [(["care"], []), ([], ["care"])] * 4 if problem == "no truthfulness" else mixed_pairs(12)
    path, out = write_fixture(tmp_path, pairs), tmp_path / "oracle.safetensors"
    before = sorted(tmp_path.iterdir())
    argv = oracle_argv(path, out) + (["--batch-rows", "3"] if problem == "odd batch" else [])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: baselines.main(argv))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error:") and "\n" not in err and message in err, err
    assert sorted(tmp_path.iterdir()) == before


# ----------------------------------------------------------------------------- export, samples, layouts, devices


def rel_error(got, want):
    """max |got − want| relative to the largest |want|."""
    return float((got - want).abs().max() / want.abs().max())


@pytest.fixture
def exports(tiny, tmp_path, monkeypatch):
    """Saved innerpissa (sign −1) and weight_diff artifacts of the tiny model, and load_model -> fresh copies."""
    model, tok = tiny
    base = copy.deepcopy(model)
    adapter = trained_adapter(model, rank=3, rotate_u=True)
    adapter.set_sign(-1)
    adapter.save(tmp_path / "innerpissa.safetensors")
    adapter.detach()
    tensors = baselines.diff_tensors(*(
        {n: (torch.randn(2, m.in_features) * 0.3, torch.randn(m.out_features, 2) * 0.3)
         for n, m in find_linears(base, default_target(base)).items()} for _ in range(2)))
    ip.save_artifact(tmp_path / "weight_diff.safetensors", tensors, {"kind": "weight_diff", "model": "tiny-qwen3",
                                                                    "sign": 1})
    monkeypatch.setattr(harness, "load_model", lambda name, **kw: (copy.deepcopy(base), tok))
    return base, tok, tmp_path


def export(kind, path, c, fmt, out):
    argv = ["export", "--model", "tiny", "--artifact", str(path), "--coeff", str(c), "--format", fmt, "--out", str(out)]
    (harness.train_main if kind == "innerpissa" else baselines.main)(argv)


def hooked_logits(base, tok, kind, path, c):
    """Logits of a copy of the base model steered at c through the artifact's own hooks."""
    model = copy.deepcopy(base)
    steerer = ev.load_steerer(model, path)
    with steerer.steer(c):
        return logits(model, tok)


def test_lora_factors_multiply_to_the_steered_weight_change(tiny):
    model, _ = tiny
    adapter = trained_adapter(model, rank=8, rotate_u=True)
    name, layer = adapter.names[0], adapter.layers[0]
    w = model.get_submodule(name).weight
    a, b = adapter.lora_factors(0.7)[name]
    r_u, r_v = ip.cayley(layer.theta_u, 0.7, layer.max_angle), ip.cayley(layer.theta_v, 0.7, layer.max_angle)
    s_c = layer.scaled_s(0.7)                                            # tested on its own above
    want = layer.U @ (r_u @ torch.diag(s_c) @ r_v.T - torch.diag(layer.S)) @ layer.V.T   # W_c − W, design formula
    assert a.shape == (8, w.shape[1]) and b.shape == (w.shape[0], 8)
    assert torch.allclose(b @ a, want, atol=1e-5) and want.abs().max() > 1e-2
    assert torch.equal(adapter.merge(0.7)[f"{name}.weight"], w + b @ a)


@pytest.mark.parametrize("kind, fmt", [("innerpissa", "merged"), ("innerpissa", "lora"),
                                       ("weight_diff", "merged"), ("weight_diff", "lora")])
def test_export_reproduces_hooked_logits(exports, kind, fmt):
    base, tok, tmp = exports
    path = tmp / f"{kind}.safetensors"
    c = 1.5 if fmt == "merged" else -1.5
    export(kind, path, c, fmt, tmp / "out")
    if fmt == "merged":
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp / "out", dtype=torch.float32)
    else:
        from peft import PeftModel                                     # test-only dependency
        reloaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp / "out")
        config = json.loads((tmp / "out" / "adapter_config.json").read_text())
        assert config["lora_alpha"] == config["r"] == (3 if kind == "innerpissa" else 2 * 2)  # weight_diff: 2r
    want = hooked_logits(base, tok, kind, path, c)
    assert rel_error(logits(reloaded.eval(), tok), want) <= 1e-5
    assert rel_error(logits(base, tok), want) > 1e-3                    # the edit is visible
    note = json.loads((tmp / "out" / "steering.json").read_text())
    assert note["coeff"] == c and note["kind"] == kind and note["artifact"] == path.name and note["format"] == fmt
    assert note["sign"] == (-1 if kind == "innerpissa" else 1)
    assert sorted(p.name for p in tmp.iterdir()) == ["innerpissa.safetensors", "out", "weight_diff.safetensors"]
    modes = {p.stat().st_mode & 0o777 for p in (tmp / "out").iterdir()}
    assert modes == {(tmp / "innerpissa.safetensors").stat().st_mode & 0o777}    # the usual mode, not 0600


@pytest.mark.parametrize("kind", ["innerpissa", "weight_diff"])
def test_merged_export_at_c0_is_the_base_model(exports, kind):
    base, tok, tmp = exports
    export(kind, tmp / f"{kind}.safetensors", 0.0, "merged", tmp / "zero")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp / "zero", dtype=torch.float32)
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in reloaded.state_dict().items())
    assert torch.equal(logits(reloaded, tok), logits(base, tok))


@pytest.mark.parametrize("problem, message", [
    ("missing artifact", "does not exist"), ("nan coeff", "not a finite number"),
    ("unknown format", "invalid choice"), ("non-empty out", "not an empty directory"),
    ("pca artifact", "residual stream"), ("wrong script", "baselines.py export"), ("other model", "differ"),
])
def test_export_bad_input_is_one_line_and_writes_nothing(exports, capsys, monkeypatch, problem, message):
    base, tok, tmp = exports
    args = {"kind": "innerpissa", "path": tmp / "innerpissa.safetensors", "c": 1.0, "fmt": "merged",
            "out": tmp / "new" / "out"}
    if problem == "missing artifact":
        args["path"] = tmp / "nope.safetensors"
    elif problem == "nan coeff":
        args["c"] = float("nan")
    elif problem == "unknown format":
        args["fmt"] = "onnx"
    elif problem == "non-empty out":
        args["out"] = tmp / "full"
        args["out"].mkdir()
        (args["out"] / "keep.txt").write_text("mine")
    elif problem == "pca artifact":
        ip.save_artifact(tmp / "pca.safetensors", {"layers.1": torch.ones(64)}, {"kind": "pca", "sign": 1})
        args.update(kind="weight_diff", path=tmp / "pca.safetensors")
    elif problem == "wrong script":
        args["path"] = tmp / "weight_diff.safetensors"
    else:
        monkeypatch.setattr(harness, "load_model", lambda name, **kw: (make_model(len(tok), seed=1), tok))
    before = sorted(p.relative_to(tmp) for p in tmp.rglob("*"))
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: export(args["kind"], args["path"], args["c"], args["fmt"], args["out"]))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert sorted(p.relative_to(tmp) for p in tmp.rglob("*")) == before   # no out, no temp dir


LAYERS = ("innerpissa", "gguf_export", "cached_step", "harness", "dilemmas", "baselines", "planted", "eval_dilemmas",
          "gguf_check", "samples", "bench")   # bottom first


def test_no_module_imports_one_above_it():
    """Every import of a project module, function-local ones included, names a module below the importer in
    LAYERS; only a script's `if __name__ == "__main__":` entry may reach up (innerpissa's runs harness's CLI)."""
    root = Path(ip.__file__).parent
    assert {p.stem for p in root.glob("*.py")} - {"test_smoke"} == set(LAYERS)
    for rank, name in enumerate(LAYERS):
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        entry = {id(x) for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
                 for x in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in entry or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for imported in [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]:
                assert imported not in LAYERS or LAYERS.index(imported) < rank, \
                    f"{name} imports {imported} (line {node.lineno})"


def test_scripts_never_import_peft():
    """Every product module's adapters are raw torch hooks: none imports peft (only this test file may)."""
    scripts = sorted(p for p in Path(__file__).parent.glob("*.py") if p.name != Path(__file__).name)
    assert {"innerpissa.py", "harness.py", "baselines.py", "eval_dilemmas.py", "planted.py"} <= {p.name for p in scripts}
    for script in scripts:
        tree = ast.parse(script.read_text())
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "torch" in imported or "innerpissa" in imported                # the walk sees imports at all
        assert not any(m.split(".")[0] == "peft" for m in imported if m), script


@pytest.mark.parametrize("kind", ["innerpissa", "pca"])
def test_samples_markdown_has_every_completion_and_c0_is_the_base_model(tiny, tmp_path, monkeypatch, capsys, kind):
    model, tok = tiny
    path = tmp_path / f"{kind}.safetensors"
    if kind == "innerpissa":
        adapter = trained_adapter(model, rank=4)
        adapter.save(path)
        adapter.detach()
    else:
        ip.save_artifact(path, {f"layers.{i}": torch.randn(64) * 3 for i in (1, 2)}, {"kind": "pca", "sign": 1})
    lines = ["Should you tell the truth?", "What is the capital of France?", "Would you lie to a friend?"]
    (tmp_path / "prompts.txt").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(samples, "load_model", lambda name, **kw: (model, tok))
    out = tmp_path / "s.md"
    samples.main(["--artifact", str(path), "--coeffs", "-1", "0", "1", "--n", "2", "--max-new-tokens", "8",
                  "--prompts", str(tmp_path / "prompts.txt"), "--out", str(out)])
    text = out.read_text()
    assert capsys.readouterr().out.strip() == text.strip()
    texts = [ip.chat(tok, q) for q in lines[:2]]
    plain = harness.generate(model, tok, texts, max_new_tokens=8)             # no steerer at all
    steerer = ev.load_steerer(model, path)
    got = samples.sample(model, tok, steerer, texts, [-1.0, 0.0, 1.0], max_new_tokens=8)
    steerer.detach()
    assert got[0.0] == plain and got[1.0] != plain and got[-1.0] != plain
    for c, completions in got.items():
        assert all(f"| {c:g} | {samples.cell(x)} |" in text for x in completions)
    assert all(f"> {q}" in text for q in lines[:2]) and lines[2] not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "prompts.txt", "s.md"])


def test_samples_default_prompts_are_truthfulness_dilemmas(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    trained_adapter(model, rank=4).save(tmp_path / "a.safetensors")
    monkeypatch.setattr(samples, "load_model", lambda name, **kw: (copy.deepcopy(model), tok))
    samples.main(["--artifact", str(tmp_path / "a.safetensors"), "--n", "1", "--max-new-tokens", "4",
                  "--out", str(tmp_path / "s.md")])
    text = (tmp_path / "s.md").read_text()
    rows = [r for r in dilemmas.load_dilemmas("data", split="test") if r["action_type"] == "to_do"]
    first = next(r for r in rows if r["labels"].get(dilemmas.TARGET))
    assert samples.dilemma_questions(1) == [dilemmas.row_question(first)]
    assert f"> Action: {first['action']}" in text and text.count("| My choice:") == 3


LAYOUTS = {  # name: (config class, model class, decoder blocks, attention writer, MLP writer)
    "llama": ("LlamaConfig", "LlamaForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "mistral": ("MistralConfig", "MistralForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "gemma3-multimodal": ("Gemma3Config", "Gemma3ForConditionalGeneration", "model.language_model.layers",
                          "self_attn.o_proj", "mlp.down_proj"),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", "model.layers", "self_attn.o_proj", "mlp.down_proj"),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", "gpt_neox.layers", "attention.dense", "mlp.dense_4h_to_h"),
}


def make_layout(name, tok):
    """A tiny random 4-block model of one decoder layout (d_model 64), vocabulary of the test tokenizer."""
    torch.manual_seed(0)
    config_class, model_class = (getattr(transformers, c) for c in LAYOUTS[name][:2])
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=None)
    if name == "gemma3-multimodal":  # a vision tower with more blocks than the language model
        vision = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                                                 num_attention_heads=2, image_size=28, patch_size=14)
        config = config_class(text_config=transformers.Gemma3TextConfig(**text), vision_config=vision,
                              mm_tokens_per_image=4, image_token_index=len(tok) - 1)
    else:
        config = config_class(**text)
    return model_class(config).eval()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_decoder_layouts_attach_train_steer_and_score(_tiny, name):
    tok = _tiny[1]
    model = make_layout(name, tok)
    blocks, attn, mlp = LAYOUTS[name][2:]
    assert ip.decoder_layers(model) is model.get_submodule(blocks) and ip.hidden_size(model) == 64
    assert sorted(find_linears(model, default_target(model, objective="readout"))) == sorted(
        f"{blocks}.1.{w}" for w in (attn, mlp))                      # below the read-out block 2
    assert baselines.readout_writer(model, 2) is model.get_submodule(f"{blocks}.2.{mlp}")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    base, hooks = logits(model, tok), hook_ids(model)

    adapter = InnerPiSSA.attach(model, rank=4)
    init = [p.detach().clone() for p in adapter.parameters()]
    stats = ip.train(model, tok, adapter, make_pairs(tok, n=12),
                     ip.TrainConfig(steps=2, batch_pairs=4, direction_pairs=8), progress=False)
    assert all(math.isfinite(v) for v in stats["heldout"]["delta"].values())
    assert not all(torch.equal(p, q) for p, q in zip(adapter.parameters(), init))
    prompts = [yes_no_prompt(tok, q) for q in QUESTIONS[:3]]
    with adapter.steer(0.0):
        assert torch.equal(logits(model, tok), base)
    with adapter.steer(1.0), torch.no_grad():
        assert not torch.equal(logits(model, tok), base)
        got = ev.score_yes_no(model, tok, prompts, batch_size=2)
        want = np.array([full_forward_scores(model, tok, p) for p in prompts])
    np.testing.assert_allclose(got["logratio"], want[:, 0], atol=1e-4, rtol=0)
    adapter.detach()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert hook_ids(model) == hooks and torch.equal(logits(model, tok), base)

    layers = baselines.layer_range(model)
    pca = baselines.build(model, {f"layers.{i}": v for i, v in baselines.pca_directions(
        model, tok, layers, make_pairs(tok, n=8)).items()}, {"kind": "pca"})
    fit = dict(rank=2, steps=1, lr=1e-2, batch_size=2)
    diff = baselines.build(model, baselines.diff_tensors(
        *(baselines.fit_lowrank_delta(model, tok, QUESTIONS[:2], [answer] * 2, **fit) for answer in ("Yes.", "No."))),
        {"kind": "weight_diff"})
    for steerer in (pca, diff):
        with steerer.steer(1.0):
            assert not torch.equal(logits(model, tok), base)
        assert torch.equal(logits(model, tok), base)


def test_gpt2_conv1d_projections_get_a_one_line_error(_tiny):
    tok = _tiny[1]
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=len(tok), n_embd=64, n_layer=4, n_head=4, n_positions=512, bos_token_id=None,
        eos_token_id=tok.eos_token_id))
    with pytest.raises(InputError) as e:
        InnerPiSSA.attach(model)
    assert str(e.value).startswith("transformer.h.0.attn.c_proj is a Conv1D, not nn.Linear") and "\n" not in str(e.value)
    assert hook_ids(model) == set()


def test_explicit_device_map_reaches_from_pretrained_and_steers(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    device_map = {f"model.{n}": "cpu" for n, _ in model.model.named_children()} | {"lm_head": "cpu"}
    (tmp_path / "map.json").write_text(json.dumps(device_map))
    seen, real = [], transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **kw: seen.append(kw.get("device_map")) or real(*a, **kw))
    loaded, tok2 = harness.load_model(str(tmp_path / "m"), device_map=str(tmp_path / "map.json"))
    assert seen == [device_map] and ip.input_device(loaded) == torch.device("cpu")
    assert torch.equal(logits(loaded, tok2), logits(model, tok))
    adapter = InnerPiSSA.attach(loaded, rank=4)
    ip.train(loaded, tok2, adapter, make_pairs(tok2, n=12), ip.TrainConfig(steps=1, batch_pairs=4, direction_pairs=8),
             progress=False)
    adapter.save(tmp_path / "a.safetensors")
    prompts = [yes_no_prompt(tok, q) for q in QUESTIONS[:3]]
    same = InnerPiSSA.load(model, tmp_path / "a.safetensors")             # the same adapter on the plain model
    with adapter.steer(1.0), same.steer(1.0):
        np.testing.assert_array_equal(ev.score_yes_no(loaded, tok2, prompts)["logratio"],
                                      ev.score_yes_no(model, tok, prompts)["logratio"])


@pytest.mark.parametrize("device_map, message", [
    ({"model": "cpu", "lm_head": "disk"}, "offloads lm_head to disk"),
    ({"model": 0, "lm_head": "cpu"}, "offloads lm_head to cpu"),
    ('{"model": ', "neither 'auto', a JSON object nor a JSON file"),
    ('["model"]', "neither 'auto', a JSON object nor a JSON file"),
    ('{"model": [0]}', "must map module names to devices"),
])
def test_offloading_and_malformed_device_maps_are_refused(tmp_path, device_map, message):
    with pytest.raises(InputError) as e:
        harness.load_model(str(tmp_path), device_map=device_map)                # refused before any loading
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_decoder_layouts_cached_step_equals_the_plain_step(_tiny, name):
    """The packed continuation (one row, a custom 4-D mask over both cached chats) on every layout. Gemma-2's
    eager attention turns the pad queries of a left-padded float64 batch into NaN (transformers' mask), which
    reaches the real tokens: its check runs in float32, where gradients agree to ~1e-5, against 1e-4."""
    tok = _tiny[1]
    model = make_layout(name, tok)
    dtype, tol = (torch.float32, 1e-4) if name == "gemma2" else (torch.float64, 1e-5)
    assert_cached_step_equals_plain(model, tok, trained_adapter(model, rank=4), "antipasto", 2, dtype, tol)


# ----------------------------------------------------------------------------- GGUF export (gguf_export.py, gguf_check.py)

GGUF_TYPES = {"attn_output": "F16", "ffn_down": "Q8_0"}     # the tiny file's non-F32 tensors


def write_tiny_gguf(path, tok, seed=0, layers=3, types=GGUF_TYPES):
    """A llama-arch GGUF of a random LlamaForCausalLM (d_model 64, 4 heads, 2 KV heads), written the way
    llama.cpp's converter does: its tensor names, attn_q / attn_k rows in its rotary order, the test tokenizer
    as a gpt2 BPE, `types` {tensor kind: F16 | Q8_0} (else F32). Returns the model it was written from."""
    import gguf
    from gguf_export import rotary_rows
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                      max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
                                      tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)                                    # not all ones: a misplaced norm shows
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(2048), w.add_embedding_length(64), w.add_block_count(layers), w.add_feed_forward_length(128)
    w.add_head_count(4), w.add_head_count_kv(2), w.add_rope_dimension_count(16), w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5), w.add_vocab_size(len(tok))
    vocab = json.loads(tok.backend_tokenizer.to_str())["model"]
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("default")
    w.add_token_list(sorted(vocab["vocab"], key=vocab["vocab"].get))
    w.add_token_types([3 if i in tok.all_special_ids else 1 for i in range(len(tok))])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in vocab["merges"]])
    w.add_eos_token_id(tok.eos_token_id), w.add_pad_token_id(tok.pad_token_id), w.add_add_bos_token(False)
    w.add_chat_template(CHATML)
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for key, t in model.state_dict().items():
        x = t.numpy()
        if key.startswith("model.layers."):
            i, module = key[len("model.layers."):].rsplit(".", 1)[0].split(".", 1)
            name = f"blk.{i}.{names[module]}.weight"
            heads = {"attn_q": 4, "attn_k": 2}.get(names[module])
            x = rotary_rows(x, heads) if heads else x
            kind = types.get(names[module], "F32")
        else:
            name, kind = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                          "lm_head.weight": None}[key], "F32"
            if name is None:
                continue                                                # tied to token_embd
        qtype = getattr(gguf.GGMLQuantizationType, kind)
        w.add_tensor(name, gguf.quants.quantize(x, qtype) if kind == "Q8_0" else x.astype(np.float16 if kind == "F16"
                                                                                             else np.float32),
                     raw_dtype=qtype if kind == "Q8_0" else None)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return model


@pytest.fixture
def tiny_gguf(_tiny, tmp_path):
    """(path, model loaded from it, tokenizer loaded from it) of a 3-block llama-arch GGUF."""
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, _tiny[1])
    model, tok = harness.load_model(str(path), device="cpu")
    return path, model, tok


def gguf_tensors(path):
    """{name: (type name, raw bytes)} of a GGUF file's tensors, and {key: [raw bytes of each part]} of its metadata."""
    import gguf_export
    return gguf_export.raw_contents(path)


GGUF_TARGET = r"\.(q_proj|k_proj|o_proj|down_proj)$"   # the rotary order, an F16 and a Q8_0 source


def gguf_artifacts(model, folder, target=GGUF_TARGET):
    """innerpissa (rank 3, rotate_u, sign −1) and weight_diff artifacts on `target` of a model."""
    adapter = ip.InnerPiSSA.attach(model, target=target, rank=3, rotate_u=True)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.3)
    adapter.set_sign(-1)
    adapter.save(folder / "innerpissa.safetensors")
    adapter.detach()
    tensors = baselines.diff_tensors(*(
        {n: (torch.randn(2, m.in_features) * 0.3, torch.randn(m.out_features, 2) * 0.3)
         for n, m in find_linears(model, target).items()} for _ in range(2)))
    ip.save_artifact(folder / "weight_diff.safetensors", tensors, {"kind": "weight_diff", "model": "tiny", "sign": 1})
    return {"innerpissa": folder / "innerpissa.safetensors", "weight_diff": folder / "weight_diff.safetensors"}


def export_gguf(kind, artifact, c, model, out):
    """`export --format gguf` of an artifact on the model loaded from the GGUF file `model`."""
    argv = ["export", "--model", str(model), "--artifact", str(artifact), "--coeff", str(c), "--format", "gguf",
            "--out", str(out)]
    (harness.train_main if kind == "innerpissa" else baselines.main)(argv)


def test_tiny_gguf_loads_as_the_model_it_was_written_from(_tiny, tmp_path):
    written = write_tiny_gguf(tmp_path / "f32.gguf", _tiny[1], types={})
    model, tok = harness.load_model(str(tmp_path / "f32.gguf"), device="cpu")
    assert all(torch.equal(v, written.state_dict()[k]) for k, v in model.state_dict().items())   # rotary rows undone
    assert tok("Should you tell the truth?")["input_ids"] == _tiny[1]("Should you tell the truth?")["input_ids"]
    assert tok.chat_template == CHATML and model.config.name_or_path == str(tmp_path / "f32.gguf")


@pytest.mark.parametrize("kind", ["innerpissa", "weight_diff"])
def test_gguf_export_at_c0_is_the_source_byte_for_byte(tiny_gguf, kind):
    path, model, _ = tiny_gguf
    artifact = gguf_artifacts(copy.deepcopy(model), path.parent)[kind]
    export_gguf(kind, artifact, 0.0, path, path.parent / "zero.gguf")
    (src, src_meta), (out, out_meta) = gguf_tensors(path), gguf_tensors(path.parent / "zero.gguf")
    assert list(out) == list(src) and out == src
    assert list(out_meta) == list(src_meta) + ["steering.note"] and {k: out_meta[k] for k in src_meta} == src_meta
    assert {t for t, _ in src.values()} == {"F32", "F16", "Q8_0"}


@pytest.mark.parametrize("kind, c", [("innerpissa", 1.5), ("weight_diff", -0.7)])
def test_gguf_export_replaces_only_the_edited_tensors_with_merge(tiny_gguf, kind, c):
    import gguf_export
    path, model, tok = tiny_gguf
    artifact = gguf_artifacts(copy.deepcopy(model), path.parent)[kind]
    out = path.parent / "steered.gguf"
    export_gguf(kind, artifact, c, path, out)
    steered = copy.deepcopy(model)
    if kind == "innerpissa":
        merged = InnerPiSSA.load(steered, artifact).merge(c)
    else:
        merged = ip.merged_weights(steered, baselines.weight_diff_factors(steered, artifact, c))
    (src, src_meta), (got, got_meta) = gguf_tensors(path), gguf_tensors(out)
    names = gguf_export.tensor_names(gguf_export.gguf_module().GGUFReader(path), merged, path)
    assert len(names) == 12 and list(got) == list(src)
    for key, name in names.items():                                   # each edited tensor is merge(c), F32 or F16
        dtype = np.float16 if src[name][0] == "F16" else np.float32
        want = gguf_export.file_layout(gguf_export.gguf_module().GGUFReader(path), name)(merged[key].numpy())
        assert got[name] == (("F16" if dtype == np.float16 else "F32"), want.astype(dtype).tobytes()), name
        assert got[name] != src[name]
    assert {n: got[n] for n in src if n not in names.values()} == {n: src[n] for n in src if n not in names.values()}
    note = json.loads(gguf_export.field_value(gguf_export.gguf_module().GGUFReader(out), "steering.note"))
    assert note["coeff"] == c and note["kind"] == kind and sorted(note["tensors"]) == sorted(names.values())
    assert {k: got_meta[k] for k in src_meta} == src_meta
    reloaded, _ = harness.load_model(str(out), device="cpu")          # transformers undoes the rotary order
    for key, t in reloaded.state_dict().items():
        want = merged.get(key, model.state_dict()[key])
        assert torch.equal(t, want.half().float() if ".o_proj." in key else want), key   # o_proj: an F16 source
    assert not torch.equal(logits(reloaded, tok), logits(model, tok))


def test_gguf_check_diff_names_exactly_the_edited_tensors(tiny_gguf):
    """`python gguf_check.py diff SOURCE FILE` (no llama.cpp needed): 0 tensors differ at c = 0, 12 at c ≠ 0."""
    path, model, _ = tiny_gguf
    artifact = gguf_artifacts(copy.deepcopy(model), path.parent)["innerpissa"]
    lines = []
    for c in (0.0, 1.5):
        export_gguf("innerpissa", artifact, c, path, path.parent / f"c{c}.gguf")
        run = subprocess.run([sys.executable, "gguf_check.py", "diff", str(path), str(path.parent / f"c{c}.gguf")],
                             cwd=Path(__file__).parent, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        lines.append(run.stdout)
    assert " 0 differ" in lines[0] and " 12 differ" in lines[1], lines
    assert all("same order: True" in x and "new keys: ['steering.note']" in x for x in lines), lines


def test_control_vector_reloads_to_our_directions(tiny_gguf):
    import gguf_export
    path, model, tok = tiny_gguf
    v = {i: torch.randn(64) for i in (1, 2)}
    ip.save_artifact(path.parent / "pca.safetensors", {f"layers.{i}": x for i, x in v.items()},
                     {"kind": "pca", "model": "tiny", "sign": -1, "layers": [1, 2]})
    export_gguf("weight_diff", path.parent / "pca.safetensors", -2.0, path, path.parent / "pca.gguf")
    directions, meta = gguf_export.read_control_vector(path.parent / "pca.gguf")
    assert directions.keys() == v.keys() and all(torch.equal(directions[i], -2.0 * v[i]) for i in v)
    assert meta["general.architecture"] == "controlvector" and meta["controlvector.model_hint"] == "llama"
    assert meta["controlvector.layer_count"] == 2 and json.loads(meta["steering.note"])["sign"] == -1
    buffer = gguf_export.cvec_buffer(directions, 64, 3, strength=0.5)            # what llama.cpp adds at block il
    assert np.array_equal(buffer[64:128], (-1.0 * v[2]).numpy()) and buffer.shape == (128,)
    steerer = baselines.load(model, path.parent / "pca.safetensors")      # our hook adds c·v_i at that block
    assert torch.equal(steerer.deltas[ip.decoder_layers(model)[2]](None, torch.zeros(1, 64)), v[2])


@pytest.mark.parametrize("problem, message", [
    ("hub model", "needs a model loaded from a GGUF file"), ("other model", "differ"),
    ("existing out", "already exists"), ("block 0", "no slot for block 0"), ("vector via innerpissa", "baselines.py"),
    ("device map", "drop --device-map"),
])
def test_gguf_export_bad_input_is_one_line_and_writes_nothing(tiny_gguf, _tiny, capsys, problem, message):
    path, model, tok = tiny_gguf
    artifacts = gguf_artifacts(copy.deepcopy(model), path.parent)
    kind, artifact, model_arg, out, extra = "innerpissa", artifacts["innerpissa"], str(path), path.parent / "o.gguf", []
    if problem == "hub model":
        model_arg = "tiny-qwen3"
    elif problem == "other model":
        write_tiny_gguf(path.parent / "other.gguf", _tiny[1], seed=1)
        model_arg = str(path.parent / "other.gguf")
    elif problem == "existing out":
        out = path.parent / "weight_diff.safetensors"
    elif problem in ("block 0", "vector via innerpissa"):
        ip.save_artifact(path.parent / "pca.safetensors", {"layers.0": torch.ones(64)}, {"kind": "pca", "sign": 1})
        kind, artifact = ("weight_diff" if problem == "block 0" else "innerpissa"), path.parent / "pca.safetensors"
    else:
        extra = ["--device-map", "auto"]
    before = {p: p.read_bytes() for p in sorted(path.parent.rglob("*"))}
    argv = ["export", "--model", model_arg, "--artifact", str(artifact), "--coeff", "1", "--format", "gguf",
            "--out", str(out), *extra]
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: (harness.train_main if kind == "innerpissa" else baselines.main)(argv))
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err, err
    assert {p: p.read_bytes() for p in sorted(path.parent.rglob("*"))} == before      # nothing written or changed


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (it compiles llama.cpp; docs/export.md)")
def test_llama_cpp_runs_the_exports_like_our_hooks(_tiny, tmp_path):
    """The engine check of docs/export.md on a tiny all-F32 file: the source at c = 0, the exported InnerPiSSA
    GGUF and a pca control vector at c, against our hooked float32 model on the same token ids."""
    import gguf_check
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, _tiny[1], types={})                          # F32 only: llama.cpp computes in F32 too
    model, tok = harness.load_model(str(path), device="cpu")
    artifacts = gguf_artifacts(copy.deepcopy(model), tmp_path)
    torch.manual_seed(2)
    ip.save_artifact(tmp_path / "pca.safetensors", {f"layers.{i}": torch.randn(64) for i in (1, 2)},
                     {"kind": "pca", "model": "tiny", "sign": 1, "layers": [1, 2]})
    prompts = gguf_check.check_prompts(tok, n_dilemmas=2, n_neutral=2, reply_tokens=24)
    base = [gguf_check.ours_logprobs(model, ids)[start - 1:-1] for ids, start in prompts[1]]
    rows = [("source", gguf_check.compare(model, tok, gguf_check.engine(path, 1), *prompts, n_greedy=8))]
    for name in ("innerpissa", "pca"):
        rows.append(gguf_check.check_artifact(model, tok, path, artifacts.get(name, tmp_path / "pca.safetensors"),
                                              1.5, tmp_path, prompts, 1, base, n_greedy=8))
    print(gguf_check.table(rows))
    for label, s in rows:
        assert s["top1_agree"] == s["n_dilemma"] == 4 and s["greedy_same"] == 4, label
        assert s["max_d_logratio"] <= 1e-3 and s["reply_max"] <= 1e-3, label
        assert label == "source" or s["edit_mean"] > 100 * s["reply_max"], label   # the edit is far above the noise


# ----------------------------------------------------------------------------- the authors' recipe, part by part
# One test per part of their code the default now follows (issue: fidelity); each fails on the earlier recipe.

def test_taskdiff_subspace_ignores_a_vector_added_to_every_difference():
    """Their PCA centres: adding m (orthogonal to every y_i, so each row keeps one norm) to every difference
    leaves B as it was. The uncentred version's B turns to m."""
    torch.manual_seed(0)
    d, p = 16, 40
    m = torch.zeros(d)
    m[0] = 5.0
    y = torch.randn(p, d) @ torch.diag(torch.linspace(3, 0.1, d))
    y[:, 0] = 0
    y = 2 * y / y.norm(dim=-1, keepdim=True)                             # every row norm 2, all ⟂ m
    runner = lambda diffs: types.SimpleNamespace(run=lambda pairs, c, lengths=None: ip.Pass(   # noqa: E731
        torch.stack([diffs, torch.zeros_like(diffs)], 1).flatten(0, 1)[:, None].expand(-1, 3, -1)))
    cfg = ip.TrainConfig(direction_pairs=p, batch_pairs=p)

    def projector(diffs, **kw):
        basis = ip.antipasto_space(None, runner(diffs), list(range(p)), replace(cfg, **kw), 4).basis
        return basis @ basis.T
    assert torch.linalg.matrix_norm(projector(y + m) - projector(y), ord=2) < 1e-4
    assert torch.linalg.matrix_norm(projector(y + m, loss_space="uncentred") - projector(y), ord=2) > 0.5


def test_direction_lists_floor_thirds_and_pad_by_the_best_remaining_score():
    """r = 4: ⌊r/3⌋ = 1 honest, 1 dishonest, r − 2 = 2 diff; r = 6 with one leader in every list: three
    picked, padded by max(honest, dishonest, diff). Ours took ⌈r/3⌉ each and padded by the diff score."""
    honest = torch.tensor([9, 8, 0, 0, 0, 0, 0, 0.5, 0])
    dishonest = torch.tensor([0, 0, 9, 8, 0, 0, 0, 0, 0.4])
    diff = torch.tensor([0, 0, 0, 0, 9, 8, 7, 0, 0.])
    assert ip.choose((honest, dishonest, diff), 4) == [0, 2, 4, 5]
    assert ip.choose((honest, dishonest, diff), 4, lists="ceil") == [0, 1, 2, 3]
    honest = torch.tensor([9, 8, 0, 0, 0, 0, 0, 0.5, 0])
    dishonest = torch.tensor([9, 0, 9, 8, 0, 0, 0, 0, 0.4])
    diff = torch.tensor([9, 0, 0, 0.1, 0, 8, 7, 0.2, 0.3])
    assert ip.choose((honest, dishonest, diff), 6) == [0, 1, 2, 3, 5, 6]     # {0,1} ∪ {0,2} ∪ {0,5}, then 3 (8), 6 (7)
    assert ip.choose((honest, dishonest, diff), 6, lists="ceil") == [0, 1, 2, 5, 6, 8]   # then by diff: 6, 8


def proj_term(plus, minus, cfg, h0, basis, progress=1.0):
    p = h0.shape[0] // 2
    rows, logits = torch.arange(2 * p), torch.zeros(2 * p, 5)
    out = {1.0: fake_pass(h0 + plus, logits, rows), -1.0: fake_pass(h0 + minus, logits, rows)}
    return ip.antipasto_loss(ip.Space(basis, basis[:, 0]), fake_pass(h0, logits, rows), out, [1] * p, cfg,
                             progress)[1]["proj"]


def test_fisher_floor_binds_on_a_dimension_the_pairs_barely_differ_in():
    """Their std floor: a B coordinate whose reference difference varies by 1e-4 across pairs is divided by
    0.05, not by its own 1e-4 std."""
    sign = torch.tensor([1.0, -1.0] * 4, dtype=torch.float64)[:, None]       # 8 pairs, ±a: batch std exactly a
    small = sign * torch.tensor([0.1, 0.1, 0.1, 1e-4], dtype=torch.float64)
    assert ip.fisher_std(small)[3] == pytest.approx(0.05) and ip.fisher_std(small, "ours")[3] < 1e-3
    assert torch.allclose(ip.fisher_std(small)[:3], torch.full((3,), math.sqrt(0.01 + 1e-6), dtype=torch.float64))
    large = sign * torch.tensor([2.0, 2.0, 2.0, 1e-4], dtype=torch.float64)   # a tenth of the median std binds
    assert ip.fisher_std(large)[3] == pytest.approx(0.1 * math.sqrt(4 + 1e-6) + 1e-6)


def test_tiny_changes_earn_less_projection_than_large_ones():
    """‖δ_full‖ is clamped at 1e-3: a change 1e-6 the size of another along the same directions moves the
    projection term toward 0. Without the clamp (ours) the term is scale-free."""
    torch.manual_seed(0)
    p, d, basis = 6, 8, torch.linalg.qr(torch.randn(8, 4, dtype=torch.float64))[0]
    h0, move = torch.randn(2 * p, 3, d, dtype=torch.float64), torch.randn(2 * p, 3, d, dtype=torch.float64)
    cfg = ip.TrainConfig(mono_weight=0.0, coherence_weight=0.0)
    large, tiny = (proj_term(s * move, -s * move, cfg, h0, basis) for s in (1.0, 1e-6))
    assert abs(tiny) < 0.01 * abs(large)
    ours = replace(cfg, floors="ours")
    assert proj_term(1e-6 * move, -1e-6 * move, ours, h0, basis) == pytest.approx(
        proj_term(move, -move, ours, h0, basis), rel=1e-6)


def test_focus_exponent_is_three_eighths_at_a_tenth_of_training():
    """Their focus exponent 0.75·min(1, t/0.2) is 0.375 at t = 0.1 (ours: 0.75·t = 0.075), measured as with
    cos = ±1 proj ∝ f^(2·exponent) at f = ‖Bᵀδ‖/‖δ‖ = 1/2 and 1/4."""
    torch.manual_seed(0)
    p, d = 4, 8
    basis = torch.eye(d)[:, :4]
    h0 = torch.zeros(2 * p, 3, d)
    h0[0::2, :, :4] = torch.randn(p, 1, 4)                               # reference differences inside B

    def proj(f, cfg):
        inside = (h0[0::2] - h0[1::2]) * 0.5
        outside = torch.zeros_like(inside)
        outside[..., 4] = inside.norm(dim=-1) * math.sqrt(1 / f ** 2 - 1)
        plus = torch.zeros_like(h0)
        plus[0::2] = inside + outside
        minus = torch.zeros_like(h0)
        minus[0::2] = -inside + outside
        return proj_term(plus, minus, cfg, h0, basis, progress=0.1)

    def exponent(cfg):
        return math.log(proj(0.5, cfg) / proj(0.25, cfg)) / (2 * math.log(2))
    cfg = ip.TrainConfig(mono_weight=0.0, coherence_weight=0.0)
    assert exponent(cfg) == pytest.approx(0.375, abs=1e-6)
    assert exponent(replace(cfg, focus_ramp="linear")) == pytest.approx(0.075, abs=1e-6)


def test_tv_barrier_is_a_mean_per_pair_then_over_pairs():
    """Pair 0 has one reply token, past τ; pair 1 three, inside τ. Per pair: (b + 0)/2; pooled: b/4."""
    rows = torch.tensor([0, 1, 2, 2, 2, 3, 3, 3])                           # honest rows 0, 2; dishonest 1, 3
    calm, hot = torch.tensor([0, 6.0, 0, 0, 0]), torch.tensor([6.0, 0, 0, 0, 0])
    logits0 = calm.repeat(8, 1)
    logits1 = logits0.clone()
    logits1[0] = hot                                                       # the honest row of pair 0 at c = +1
    h = torch.randn(4, 3, 8)
    cfg = ip.TrainConfig(mono_weight=0.0)

    def coh(**kw):
        out = {1.0: fake_pass(h, logits1, rows), -1.0: fake_pass(h, logits0, rows)}
        return ip.antipasto_loss(ip.Space(torch.eye(8)[:, :4], torch.eye(4)[0]), fake_pass(h, logits0, rows), out,
                                 [1, 3], replace(cfg, **kw), 1.0)[1]["coh"]
    assert coh() > 0 and coh() == pytest.approx(2 * coh(tv_mean="pooled"), rel=1e-6)


def test_hinge_margin_per_pair_from_its_honest_row_entropy():
    """A pair with a sure reference (θ ≈ 0.04) whose output gap moved by ±0.2 meets its own margin and adds no
    gradient; a pair with a flat one (θ ≈ 0.63) does not. One pooled θ (≈ 0.46) binds both."""
    rows = torch.tensor([0, 1, 2, 3])
    logits = torch.stack([torch.tensor([30.0, 0, 0, 0])] * 2 + [torch.zeros(4)] * 2)   # pair 0 sure, pair 1 flat
    entropy = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1)
    ref = fake_pass(torch.zeros(4, 3, 8), logits, rows)
    for margin, pair0_free in (("pair", True), ("batch", False)):
        delta = {1.0: torch.tensor([0.2, 0.2], requires_grad=True), -1.0: torch.tensor([-0.2, -0.2], requires_grad=True)}
        cos = {1.0: torch.ones(2), -1.0: -torch.ones(2)}
        ip.hinge(delta, entropy, ref, cos, ip.TrainConfig(margin=margin)).backward()
        assert (delta[1.0].grad[0] == 0) == pair0_free and delta[1.0].grad[1] != 0


def test_two_micro_batches_accumulate_to_their_mean_gradient(tiny):
    """batch_pairs 4 as two micro-batches of 2: every gradient equals the mean of the two halves' (each half
    with its own batch std); one forward of 4 differs."""
    model, tok = tiny
    adapter = trained_adapter(model, rank=4)
    pairs = ip.make_pairs(tok, n=12)
    cfg = ip.resolve(ip.TrainConfig(batch_pairs=4, micro_pairs=2, clip=None), model)
    runner = CachedPairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
    space = ip.OBJECTIVES["antipasto"].space(model, runner, pairs, cfg, 4)
    halves = []
    for part in (pairs[:2], pairs[2:4]):
        adapter.zero_grad()
        ip.step_loss(runner, space, part, cfg, 0.5)[0].backward()
        halves.append([p.grad.clone() for p in adapter.parameters()])
    opt = torch.optim.SGD(adapter.parameters(), lr=0.0)
    ip.train_step(runner, space, pairs[:4], cfg, opt, 0.5)
    for p, g0, g1 in zip(adapter.parameters(), *halves):
        assert torch.allclose(p.grad, (g0 + g1) / 2, rtol=1e-5, atol=1e-9) and p.grad.abs().max() > 0
    ip.train_step(runner, space, pairs[:4], replace(cfg, micro_pairs=4), opt, 0.5)
    assert not all(torch.allclose(p.grad, (g0 + g1) / 2) for p, g0, g1 in zip(adapter.parameters(), *halves))


def test_row_windows_read_every_token_both_rows_have(tiny):
    """Whole-row windows: min(len) − 1 predictions per pair, and the plain pass's targets on the shorter row
    are its own tokens 1 …; the cached pass puts the same predictions in front from the persona chat."""
    model, tok = tiny
    adapter = trained_adapter(model, rank=4)
    pairs = ip.make_pairs(tok, n=3)
    n = ip.row_windows(tok, pairs)
    lengths = [(len(ip.token_ids(tok, a)), len(ip.token_ids(tok, b))) for a, b in pairs]
    assert n == [min(x) - 1 for x in lengths] and max(n) > max(ip.suffix_lengths(tok, pairs))
    for runner_type in (ip.PairRunner, CachedPairRunner):
        p = runner_type(model, tok, adapter, pairs, 2, 3).run(pairs, 0.0, n)
        short = 0 if lengths[0][0] <= lengths[0][1] else 1
        assert p.per_position(p.targets)[p.rows == short].tolist() == ip.token_ids(tok, pairs[0][short])[1:]


def test_row_window_reads_are_the_positions_where_the_two_rows_differ(tiny):
    """row_window_reads, from tokens alone, counts the whole-row window positions whose prediction differs
    between a pair's rows in the plain pass (one prompt answered two ways: only the answer's; persona pairs:
    all but the chat's shared start); the CLI's note names the first and not the second."""
    model, tok = tiny
    answers, personas = answer_like_pairs(tok, n=4), ip.make_pairs(tok, n=4)
    for pairs in (answers, personas):
        n = ip.row_windows(tok, pairs)
        p = ip.PairRunner(model, tok, None, pairs, 2, 3).run(pairs, 0.0, n)
        nll = p.per_position(ip.next_token_nll(p.logits, p.targets))
        differ = (p.dishonest(nll) - p.honest(nll)).abs() > 1e-6
        assert torch.bincount(p.honest(p.rows) // 2, weights=differ.double()).long().tolist() == \
            ip.row_window_reads(tok, pairs)
    assert max(ip.row_window_reads(tok, answers)) < min(ip.row_windows(tok, answers)) / 4
    assert "divided by" in harness.window_note(tok, answers) and harness.window_note(tok, personas) is None


def test_authors_init_and_additive_delta_s():
    """θ = x − xᵀ with x ~ N(0, 0.003²): A = θ − θᵀ has off-diagonal std ≈ 0.0085; ΔS ~ N(4e-4, 4e-4²), added to S
    as it is (S_c − S = cΔS); "mult" scales S instead."""
    torch.manual_seed(0)
    layer = ip.SVDSteer(torch.nn.Linear(96, 64), 64, False)
    a = layer.theta_v - layer.theta_v.T
    assert 0.0080 < a[~torch.eye(64, dtype=torch.bool)].std() < 0.0090
    assert 3e-4 < layer.lam.mean() < 5e-4 and 3e-4 < layer.lam.std() < 5e-4
    assert torch.allclose(layer.scaled_s(0.5) - layer.S, 0.5 * layer.lam, atol=1e-7)
    layer.scaling = "mult"
    assert torch.allclose(layer.scaled_s(0.5), layer.S * (1 + 0.5 * layer.lam))


def test_intersection_keeps_the_shared_span():
    """intersect(a, b): a inside b returns a's span; with one shared direction e, the first column is ±e."""
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(12, 12))[0]
    a, b = q[:, :3], q[:, :7]
    v, s = ip.intersect((a, None), (b, None))
    assert v.shape[1] == 3 and torch.allclose(v @ v.T, a @ a.T, atol=1e-5) and torch.allclose(s, torch.ones(3))
    v, _ = ip.intersect((q[:, :3], None), (q[:, 2:6], None))
    assert v.shape[1] == 1 and torch.allclose(v[:, 0].abs(), q[:, 2].abs(), atol=1e-5)


def test_default_loss_space_is_taskdiff_x_suppressed_x_write(tiny):
    """On a model wider than 256 the default B is the three-way intersection, 4 orthonormal columns; on the
    64-wide test model "suppressed" cannot be built (the head's 256 directions span it) and training says so."""
    model, tok = tiny
    wide_model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
        vocab_size=len(tok), hidden_size=288, intermediate_size=320, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, pad_token_id=tok.pad_token_id)).eval()
    for m, built in ((wide_model, "taskdiff_x_suppressed_x_write"), (model, "taskdiff_x_write (suppressed needs")):
        adapter = ip.InnerPiSSA.attach(m, rank=4)
        stats = ip.train(m, tok, adapter, ip.make_pairs(tok, n=20), ip.TrainConfig(steps=1, batch_pairs=4),
                         progress=False, runner_type=CachedPairRunner)
        adapter.detach()
        assert stats["loss_space"].startswith(built)
    pairs = ip.make_pairs(tok, n=20)
    runner = CachedPairRunner(wide_model, tok, None, pairs, 1, 3)
    cfg = ip.resolve(ip.TrainConfig(batch_pairs=4), wide_model)
    basis = ip.antipasto_space(wide_model, runner, pairs, cfg, 4).basis
    assert basis.shape == (288, 4) and torch.allclose(basis.T @ basis, torch.eye(4), atol=1e-5)
    assert torch.linalg.matrix_norm(basis @ basis.T - (lambda v: v @ v.T)(
        ip.antipasto_space(wide_model, runner, pairs, replace(cfg, loss_space="taskdiff"), 4).basis), ord=2) > 1e-3


def test_every_deviation_names_a_real_switch(tiny):
    """Each `--deviate` name sets fields that exist (on TrainConfig or InnerPiSSA.attach) to a value other than
    the authors' default, so the ablation's rows each change something."""
    model, _ = tiny
    attach = inspect.signature(ip.InnerPiSSA.attach).parameters
    for name in ip.DEVIATIONS:
        adapter_kw, cfg_kw = ip.deviations([name])
        assert adapter_kw or cfg_kw, name
        for key, value in cfg_kw.items():
            assert value != getattr(ip.TrainConfig(), key) and value != ip.OBJECTIVES["antipasto"].recipe.get(key), name
        for key, value in adapter_kw.items():
            assert key in attach and value != attach[key].default, name
        ip.InnerPiSSA.attach(model, rank=4, **adapter_kw).detach()


@pytest.mark.parametrize("name", list(ip.DEVIATIONS))
def test_every_deviation_builds_its_config_from_the_cli(tmp_path, name):
    """`innerpissa.py --deviate NAME` builds a TrainConfig carrying NAME's fields, also where a field has its own
    flag (whole-batch's micro_pairs, once passed twice: a TypeError before any training)."""
    args = harness.parse_args(["--out", str(tmp_path / "a.safetensors"), "--deviate", name])
    cfg = harness.train_config(args, 3)
    assert cfg.layer == 3 and all(getattr(cfg, k) == v for k, v in ip.deviations([name])[1].items())


def test_scale_only_trains_the_singular_values_and_no_rotation(tiny):
    """`--deviate scale-only`: every θ ends at exactly 0 (R = I, so ΔW = U_r diag(S_c − S_r) V_rᵀ) while λ moves."""
    model, tok = tiny
    adapter = ip.InnerPiSSA.attach(model, rank=4)
    before = {k: v.clone() for k, v in adapter.state_dict().items() if k.endswith("lam")}
    cfg = ip.TrainConfig(steps=2, batch_pairs=4, **ip.deviations(["scale-only"])[1])
    ip.train(model, tok, adapter, ip.make_pairs(tok, n=20), cfg, progress=False, runner_type=CachedPairRunner)
    adapter.detach()
    state = adapter.state_dict()
    assert all(torch.count_nonzero(v) == 0 for k, v in state.items() if "theta" in k)
    assert all(not torch.equal(state[k], v) for k, v in before.items())


@pytest.mark.parametrize("content, message", [
    ("a,b\nx,y\nz,w\n", "needs the columns positive and negative"),
    ("positive,negative\nsame,same\nx,y\n", "rows [2] have an empty or identical side"),
    ("positive,negative\nx,\nu,v\n", "rows [2] have an empty or identical side"),
])
def test_pairs_file_rejects_a_malformed_csv_in_one_line(monkeypatch, capsys, tiny, tmp_path, content, message):
    bad = tmp_path / "pairs.csv"
    bad.write_text(content)
    out = tmp_path / "a.safetensors"
    err = run_main(monkeypatch, capsys, tiny, ["--pairs", str(bad), "--out", str(out)])
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]


def test_pairs_file_trains_on_pairs_that_differ_anywhere(tiny, tmp_path):
    """Pairs from a CSV that share no persona (here: one answer vs another after the same question) train
    through the cached step, whose chats are then just the common chat template."""
    model, tok = tiny
    rows = [(ip.chat(tok, q, prefill=" Yes, it is true."), ip.chat(tok, q, prefill=" No, that is false."))
            for q in QUESTIONS]
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([("positive", "negative"), *rows])
    pairs = harness.load_pair_file(path)
    assert sorted(pairs) == sorted(rows)
    adapter = ip.InnerPiSSA.attach(model, rank=4)
    stats = ip.train(model, tok, adapter, pairs, ip.TrainConfig(steps=2, batch_pairs=4), progress=False,
                     runner_type=CachedPairRunner)
    adapter.detach()
    assert all(math.isfinite(v) for v in stats["heldout"]["delta"].values()) and stats["steps"] == 2


def test_artifacts_from_before_format_2_keep_their_relative_scaling():
    """Before format 2, scaling "add" meant S ⊙ (1 + cλ); such a file loads as "mult", a new one as written."""
    assert ip.saved_scaling({"scaling": "add"}) == "mult"
    assert ip.saved_scaling({"scaling": "add", "format": 2}) == "add"
    assert ip.saved_scaling({"scaling": "exp"}) == "exp"


# ----------------------------------------------------------------------------- planted.py


def planted_run(tmp_path, name, *extra):
    """planted.main on the tiny model saved in tmp_path/m (2 steps); the planted directory's path."""
    out = tmp_path / name
    planted.main(["--model", str(tmp_path / "m"), "--out", str(out), "--steps", "2", "--direction-steps", "2",
                  "--batch-rows", "2", "--rank", "2",
                  *extra])
    return out


def test_planted_model_is_its_seed_merged_and_reads_only_tune_rows(tiny, tmp_path, monkeypatch):
    """Two builds with one seed give the same delta; the saved weights are W + B A, so the loaded model
    computes what the hooked delta does; only the tune half is ever loaded; another seed plants otherwise."""
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    splits, real = [], dilemmas.load_dilemmas
    monkeypatch.setattr(dilemmas, "load_dilemmas", lambda *a, **kw: splits.append(kw.get("split")) or real(*a, **kw))
    a, b = planted_run(tmp_path, "a"), planted_run(tmp_path, "b")
    assert splits == ["tune", "tune"]
    (da, va), (db, vb) = planted.load_delta(a / "delta.safetensors"), planted.load_delta(b / "delta.safetensors")
    assert torch.equal(va, vb) and bool(va.abs().max() > 0)                        # stage 1 moved v off 0
    assert sorted(da) == sorted(planted.find_linears(model, planted.planted_target(model)))
    assert all(torch.equal(x, y) for n in da for x, y in zip(da[n], db[n]))
    assert any(bool(B.abs().max() > 0) for _, B in da.values())                       # two steps moved B off 0
    note = json.loads((a / "planted.json").read_text())
    tune = {r["dilemma_idx"] for r in real("data", split="tune")}
    test = {r["dilemma_idx"] for r in real("data", split="test")}
    assert set(note["tune_dilemma_ids"]) <= tune and not set(note["tune_dilemma_ids"]) & test
    loaded, tok2 = harness.load_model(str(a))
    steer = baselines.Steerer({m: baselines.lowrank_delta(*da[n]) for n, m in
                               planted.find_linears(model, planted.planted_target(model)).items()}, {})
    with steer.steer(1.0):
        hooked = logits(model, tok)
    assert torch.allclose(logits(loaded, tok2), hooked, atol=1e-5) and not torch.allclose(hooked, logits(model, tok))
    dc, _ = planted.load_delta(planted_run(tmp_path, "c", "--seed", "1") / "delta.safetensors")
    assert not all(torch.equal(x, y) for n in da for x, y in zip(da[n], dc[n]))


def test_planting_starts_a_unit_fit_away_and_ends_below_innerpissas_loss_block(tiny):
    """With ΔW = 0 the planted states are the base model's, so the fit term ‖h − (h⁰ ± t)‖²/‖t‖² is exactly 1,
    the anchor term 0 and nothing is written; the planted blocks end below InnerPiSSA's loss block, where it
    reads; the tail of each persona prompt is the persona-free prompt's end."""
    model, tok = tiny
    linears = planted.find_linears(model, planted.planted_target(model))
    layer = planted.last_block(linears)
    assert layer < ip.default_layer(model)
    delta = planted.init_delta(linears, 2, 0, "cpu")
    steer = baselines.Steerer({linears[n]: baselines.lowrank_delta(a, b) for n, (a, b) in delta.items()}, {})
    batch = planted.persona_rows(["Is it fine to keep the change?", "Do you tell your friend?"], random.Random(0))
    target = torch.randn(model.config.hidden_size)
    loss, logs = planted.plant_loss(model, tok, steer, batch, [harness.yes_no_prompt(tok, "Any question?")], layer, target)
    assert logs["fit"] == pytest.approx(1.0, abs=1e-6) and logs["keep"] == 0 and logs["w+"] == logs["w-"] == 0
    question = harness.yes_no_prompt(tok, "Do you tell your friend?")
    prompt = planted.persona_prompt(tok, "Do you tell your friend?", planted.PERSONAS["honest"][0], "user")
    n = planted.shared_suffix(ip.token_ids(tok, prompt), ip.token_ids(tok, question))
    assert 0 < n < len(ip.token_ids(tok, question)) and prompt.endswith(tok.decode(ip.token_ids(tok, question)[-n:]))


def planting_at_zero(model):
    """(ℓ, the rank-2 stage-2 delta {name: (A, B = 0)}, its Steerer) on the tiny model's planted modules."""
    linears = planted.find_linears(model, planted.planted_target(model))
    delta = planted.init_delta(linears, 2, 0, "cpu")
    return planted.last_block(linears), delta, baselines.Steerer(
        {linears[n]: baselines.lowrank_delta(a, b) for n, (a, b) in delta.items()}, {})


def test_plantings_even_term_is_the_yes_no_change_both_personas_share_and_reaches_the_delta(tiny):
    """plant_loss(even_weight = w) adds w · mean_rows e², e = (y(P⁺x) + y(P⁻x))/2 − y(x) with y the Yes/No
    log-ratio: at ΔW = 0 its e matches the plain scorer's numbers on the same prompts (y(x) the persona-free
    prompt's), the stage-2 terms are unchanged, and its gradient reaches the delta (B's gradient differs)."""
    model, tok = tiny
    layer, delta, steer = planting_at_zero(model)
    questions = ["Is it fine to keep the change?", "Do you tell your friend?"]
    batch = planted.persona_rows(questions, random.Random(0))
    target, anchors = torch.randn(model.config.hidden_size), [harness.yes_no_prompt(tok, "Any question?")]
    y = lambda prompts: harness.yes_no_logratio(model, tok, prompts)
    y_pos = y([planted.persona_prompt(tok, q, *pos) for q, pos, _ in batch])
    y_neg = y([planted.persona_prompt(tok, q, *neg) for q, _, neg in batch])
    e = (y_pos + y_neg) / 2 - y([harness.yes_no_prompt(tok, q) for q in questions])
    assert abs(e).max() > 1e-3                                             # the personas do move the tiny model
    grads = []
    for w in (0.0, 2.0):
        loss, logs = planted.plant_loss(model, tok, steer, batch, anchors, layer, target, even_weight=w)
        loss.backward()
        grads.append(torch.cat([b.grad.flatten() for _, b in delta.values()]))
        for a, b in delta.values():
            a.grad = b.grad = None
    assert "even" not in planted.plant_loss(model, tok, steer, batch, anchors, layer, target)[1]
    assert logs["even"] == pytest.approx(float(abs(e).mean()), abs=1e-5)
    assert logs["fit"] == pytest.approx(1.0, abs=1e-6)
    assert loss.item() == pytest.approx(1.0 + 2.0 * float((e ** 2).mean()), abs=1e-5)
    assert (grads[1] - grads[0]).abs().max() > 1e-6


def test_plantings_plain_reference_is_the_persona_free_prompts_states_plus_the_write(tiny):
    """plant_loss(reference="plain") fits block ℓ's states on the tokens after the persona to the persona-free
    prompt's base states ± target: at ΔW = 0 its fit equals that distance read prompt by prompt, unpadded (the
    batch left-pads prompts of unequal lengths, so this checks the alignment); the default reference reads 1."""
    model, tok = tiny
    layer, delta, steer = planting_at_zero(model)
    questions = ["Is it fine to keep the change?", "Do you tell your friend the whole long story tonight?"]
    batch = planted.persona_rows(questions, random.Random(1))
    target = 0.01 * torch.randn(model.config.hidden_size)           # about the size of the personas' own change
    anchors = [harness.yes_no_prompt(tok, "Any question?")]
    total, count = 0.0, 0
    with torch.no_grad():
        for q, pos, neg in batch:
            for spec, sign in ((pos, 1.0), (neg, -1.0)):
                p, x = planted.persona_prompt(tok, q, *spec), harness.yes_no_prompt(tok, q)
                n = planted.shared_suffix(ip.token_ids(tok, p), ip.token_ids(tok, x))
                h_p = planted.layer_states(model, tok, [p], layer)[0][0, -n:]              # [n, d]
                h_x = planted.layer_states(model, tok, [x], layer)[0][0, -n:]              # [n, d]
                total, count = total + float((h_p - h_x - sign * target).pow(2).sum()), count + n
        fit = planted.plant_loss(model, tok, steer, batch, anchors, layer, target, reference="plain")[1]["fit"]
        default = planted.plant_loss(model, tok, steer, batch, anchors, layer, target)[1]["fit"]
    assert fit == pytest.approx(total / count / float(target.pow(2).sum()), rel=1e-4)
    assert default == pytest.approx(1.0, abs=1e-6) and abs(fit - 1.0) > 0.1    # the personas move the tiny model
    with pytest.raises(InputError, match="reference 'Plain'"):
        planted.plant_loss(model, tok, steer, batch, anchors, layer, target, reference="Plain")


def test_gain_neuron_reads_one_on_average_nothing_it_avoids_and_twice_g1_across_the_persona_gap():
    """Stage 3's rows: t = ⟨x, unit⟩ has mean 1 over the persona-free inputs and is blind to the avoided directions;
    the persona term adds nothing on average without a persona and 2·g1 (before silu(κ)) across a gap of 2δ·d̂."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 16, generator=g) + 3 * torch.randn(16, generator=g)     # a shared mean, as residuals have
    d_hat = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    avoid = torch.stack([d_hat, torch.randn(16, generator=g)])
    kappa, g0, g1, half_gap = 4.0, 2.0, 0.5, 1.7
    gate, up = planted.gain_rows(x, g0, kappa, avoid, d_hat, half_gap, g1)
    unit, scale = gate / kappa, torch.nn.functional.silu(torch.tensor(kappa))
    assert float((x @ unit).mean()) == pytest.approx(1.0, abs=1e-5)
    assert float((avoid @ unit).abs().max()) < 1e-5 * float(unit.norm() * avoid.norm(dim=1).max())
    assert float((x @ up).mean() * scale) == pytest.approx(g0, abs=1e-4)
    gap = (x + half_gap * d_hat) @ up - (x - half_gap * d_hat) @ up
    assert torch.allclose(gap * scale, torch.full_like(gap, 2 * g1), atol=1e-4)


def test_gain_stage_rewrites_two_neurons_and_nothing_else(tiny, tmp_path):
    """--gain changes the stage-2 model only in neuron j's gate/up rows and down_proj column of block ℓ and its
    twin's of block ℓ + 2 (ℓ the planted block, below InnerPiSSA's loss block; the twin above it), and those
    columns are ±v's neuron; with the same seed everything else is the plain planted model bit for bit."""
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    plain, gain = planted_run(tmp_path, "a"), planted_run(tmp_path, "g", "--gain", "1")
    note = json.loads((gain / "planted.json").read_text())
    layer = note["training"]["layer"]
    neurons = {int(b): j for b, j in note["gain"]["neurons"].items()}
    assert sorted(neurons) == [layer, layer + 2] and layer < ip.default_layer(model) < layer + 2
    a, b = harness.load_model(str(plain))[0].state_dict(), harness.load_model(str(gain))[0].state_dict()
    _, v = planted.load_delta(gain / "delta.safetensors")
    changed = {}
    for key in a:
        diff = (a[key] != b[key]).nonzero()
        if len(diff):
            changed[key] = sorted({int(i) for i in diff[:, 1 if "down_proj" in key else 0]})
    prefix = ip.find_blocks(model)[0]
    assert changed == {f"{prefix}.{i}.mlp.{m}.weight": [j] for i, j in neurons.items()
                       for m in ("gate_proj", "up_proj", "down_proj")}
    assert all(torch.equal(b[f"{prefix}.{i}.mlp.down_proj.weight"][:, j], v) for i, j in neurons.items())
    assert note["gain"][f"a{layer}"]["honest"] > note["gain"][f"a{layer}"]["dishonest"]


def test_gain_without_stage_2_is_the_base_model_but_for_two_units(tiny, tmp_path):
    """--steps 0 --gain: no persona delta, so the saved model is the base model except the gain unit and its twin."""
    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    out = planted_run(tmp_path, "g", "--steps", "0", "--gain", "1")
    base, gain = model.state_dict(), harness.load_model(str(out))[0].state_dict()
    changed = {k for k in base if not torch.equal(base[k], gain[k])}
    neurons = json.loads((out / "planted.json").read_text())["gain"]["neurons"]
    prefix = ip.find_blocks(model)[0]
    assert changed == {f"{prefix}.{i}.mlp.{m}.weight" for i in neurons for m in ("gate_proj", "up_proj", "down_proj")}


def test_planted_personas_are_not_innerpissas_wording():
    """The planting must teach a concept InnerPiSSA's own persona reaches, not its string."""
    theirs = {ip.persona(h, t).strip().lower() for h in (True, False) for t in ip.TEMPLATES}
    ours = [p for side in planted.PERSONAS.values() for p in side]
    assert len(planted.PERSONAS["honest"]) >= 4 and len(planted.PERSONAS["dishonest"]) >= 4
    assert not any(t in p.lower() or p.lower() in t for p in ours for t in theirs)


@pytest.mark.parametrize("flags, named", [(["--steps", "0"], "--steps 0"),
                                          (["--even-steps", "-5"], "--even-steps -5"),
                                          (["--direction-kl-tau", "0"], "--direction-kl-tau 0"),
                                          (["--lr", "-1"], "--lr -1"), (["--scale", "0"], "--scale 0")])
def test_planted_bad_input_writes_nothing(tmp_path, capsys, flags, named):
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: planted.main(["--model", "embedded", "--out", str(tmp_path / "p"), *flags]))
    err = capsys.readouterr().err.strip()
    assert e.value.code != 0 and err.count("\n") == 0 and named in err
    assert not (tmp_path / "p").exists()


def test_frozen_weights_restores_each_flag_also_on_error(tiny):
    model, _ = tiny
    first = next(model.parameters())
    first.requires_grad_(False)                                   # one parameter already frozen by the caller
    with pytest.raises(RuntimeError), ip.frozen_weights(model):
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError
    assert not first.requires_grad and all(p.requires_grad for p in list(model.parameters())[1:])

"""Smoke tests on a tiny random Qwen3 built in-process (no downloads, no files).

The model is `Qwen3ForCausalLM(Qwen3Config(...))` with a few layers and a ByteLevel
BPE tokenizer trained here on a few sentences, with ChatML special tokens and a
ChatML chat template, so every code path (chat templates, left padding, Yes/No
token scans, hooks, training, saving) runs exactly as on a real model, in seconds.

Run: python -m pytest -q test_smoke.py
"""
import copy

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

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
import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import innerpissa as ip  # noqa: E402

TEXTS = ["Pretend you are an honest person.", "The capital of France is", "yes no"]


def logits(model, tok, texts=TEXTS):
    with torch.no_grad():
        return model(**ip.tokenize(tok, texts)).logits


def trained_adapter(model, rank=8, rotate_u=False, seed=0):
    """An adapter with visibly non-zero θ, λ (as after training), so every test exercises them."""
    torch.manual_seed(seed)
    adapter = ip.InnerPiSSA.attach(model, rank=rank, rotate_u=rotate_u)
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
    layer = trained_adapter(model).layers[0]
    s_plus, s_minus = layer.S * torch.exp(1.7 * layer.lam), layer.S * torch.exp(-1.7 * layer.lam)
    assert torch.allclose(s_plus * s_minus, layer.S ** 2, rtol=1e-5)
    assert not torch.allclose(s_plus, layer.S, rtol=1e-2)


def test_top_svd_reconstructs_weight_at_full_rank(tiny):
    model, _ = tiny
    weight = model.model.layers[1].mlp.down_proj.weight                  # [64, 128]
    u, s, v = ip.top_svd(weight, 64)
    assert torch.allclose(u @ torch.diag(s) @ v.T, weight, atol=1e-5)


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
    with pytest.raises(ip.InputError, match="matches no nn.Linear"):
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
    assert len(ip.read_lines(ip.DATA_DIR / "suffixes.txt")) >= 150


@pytest.mark.parametrize("separation", ["logsigmoid", "linear"])
def test_training_separates_plus_from_minus(tiny, separation):
    model, tok = tiny
    torch.manual_seed(0)
    adapter = ip.InnerPiSSA.attach(model, rank=8)
    pairs = ip.make_pairs(tok, n=60)
    cfg = ip.TrainConfig(steps=1, lr=5e-2, batch_pairs=8, separation=separation)
    before = ip.train(model, tok, adapter, pairs, cfg, progress=False)["heldout"]
    cfg = ip.TrainConfig(steps=12, lr=5e-2, batch_pairs=8, separation=separation)
    after = ip.train(model, tok, adapter, pairs, cfg, progress=False)["heldout"]
    assert after[1.0] - after[-1.0] > 3 * (before[1.0] - before[-1.0]) > 0
    assert after[1.0] > after[0.0] > after[-1.0]
    assert all(p.requires_grad for p in model.parameters())            # training restores the flags


def test_nan_loss_stops_training_with_clear_error(tiny):
    model, tok = tiny
    adapter = trained_adapter(model)
    with torch.no_grad():
        adapter.layers[0].lam.fill_(float("nan"))
    with pytest.raises(ip.InputError, match="non-finite loss"):
        ip.train(model, tok, adapter, ip.make_pairs(tok, n=30), ip.TrainConfig(steps=2), progress=False)


def yes_bias_steer(model, tok, amount):
    """A steer(c) that adds c·amount to every Yes logit: c = +1 says Yes more."""
    yes, _ = ip.yes_no_ids(tok)

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
    assert ip.calibrate_sign(model, tok, steer, honest_yes) == 1
    assert ip.calibrate_sign(model, tok, steer, honest_no) == -1
    probes = ip.load_probes()
    assert len(probes) >= 16 and {p["honest_answer"] for p in probes} == {"Yes", "No"}


def run_main(monkeypatch, capsys, tiny, argv):
    """Run innerpissa's CLI in-process on the tiny model; returns what it printed on stderr."""
    monkeypatch.setattr(ip, "load_model", lambda name, device=None: tiny)
    with pytest.raises(SystemExit) as exit_info:
        ip.run_cli(lambda: ip.main(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


@pytest.mark.parametrize("flags, message", [
    (["--target", "no_such_layer"], "matches no nn.Linear"),
    (["--rank", "1000"], "--rank 1000 must be in"),
    (["--layer", "99"], "--layer 99 is out of range"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(monkeypatch, capsys, tiny, tmp_path, flags, message):
    out = tmp_path / "a.safetensors"
    text = run_main(monkeypatch, capsys, tiny, ["--out", str(out), "--steps", "1", *flags])
    assert message in text and "\n" not in text and text.startswith("error:")
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_out_and_missing_model(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for argv, message in [(["--model", "embedded", "--out", str(blocker / "x" / "a.safetensors")], "--out"),
                          (["--model", str(tmp_path / "nope"), "--out", str(tmp_path / "a.safetensors")],
                           "does not exist")]:
        proc = subprocess.run([sys.executable, "innerpissa.py", *argv], capture_output=True, text=True,
                              cwd=ip.DATA_DIR.parent)
        assert proc.returncode != 0
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_trains_calibrates_and_saves(monkeypatch, tiny, tmp_path, capsys):
    model, tok = tiny
    monkeypatch.setattr(ip, "load_model", lambda name, device=None: (model, tok))
    ip.main(["--out", str(tmp_path / "a.safetensors"), "--steps", "3", "--rank", "4", "--batch-pairs", "4"])
    summary = capsys.readouterr().out
    assert "held-out" in summary and "sign" in summary
    tensors, meta = ip.load_artifact(tmp_path / "a.safetensors")
    assert meta["kind"] == "innerpissa" and meta["rank"] == 4 and meta["sign"] in (1, -1)
    assert meta["model"] == "tiny-qwen3"


def test_block_outputs_match_hidden_states_and_leave_no_hook(tiny):
    model, tok = tiny
    batch = ip.tokenize(tok, TEXTS)
    before = hook_ids(model)
    with torch.no_grad():
        found, out = ip.block_outputs(model, batch, [0, 2])
        hidden = copy.deepcopy(model)(**batch, output_hidden_states=True).hidden_states
    assert sorted(found) == [0, 2] and out is None                      # stopped after block 2
    for i in found:
        assert torch.equal(found[i], hidden[i + 1])
    assert hook_ids(model) == before

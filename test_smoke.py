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

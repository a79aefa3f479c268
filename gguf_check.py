"""The engine check: llama.cpp (llama-cpp-python, not a requirement) against our hooked float32 model.

The same token ids go through both: the source GGUF file at c = 0, each artifact exported with
`export --format gguf` (gguf_export.py) at c, a pca/random control vector loaded at strength c as
llama.cpp's --control-vector-scaled loads it. Reported per form (docs/export.md reads them): the top-1
next token and the Yes/No log-ratio at the end of each dilemma prompt, the largest |Δ log p| over our 10
likeliest tokens there, greedy continuations, and |Δ log p| of every reply token of some neutral chats,
next to the size of the edit itself (our reply log-probs at c against c = 0).

Usage: python gguf_check.py check --model embedded --artifacts A [B ...] --coeff 1     (needs llama-cpp-python)
       python gguf_check.py diff embedded steered.gguf                 (which tensors and keys differ)
"""
import argparse
import ctypes
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import baselines
from dilemmas import load_dilemmas, load_neutral, row_prompts
from eval_dilemmas import load_steerer
from gguf_export import cvec_buffer, raw_contents, read_control_vector
from harness import EMBEDDED, ArgParser, gguf_source, innerpissa_factors, load_model, run_cli, run_export, yes_no_ids
from innerpissa import InputError, chat, load_artifact


def engine(path, threads=2, n_ctx=1024):
    """llama.cpp (llama-cpp-python) on a GGUF file, keeping the logits of every position."""
    from llama_cpp import Llama       # llama-cpp-python: optional, imported only when the check runs
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, logits_all=True,
                 verbose=False)


def set_control_vector(llm, path, strength):
    """Load a control-vector file into llama.cpp as its --control-vector-scaled FILE strength does: the buffer
    of common_control_vector_load (cvec_buffer), applied to blocks 1 … n_layer − 1."""
    import llama_cpp
    directions, _ = read_control_vector(path)
    n_embd, n_layer = llama_cpp.llama_model_n_embd(llm.model), llama_cpp.llama_model_n_layer(llm.model)
    data = cvec_buffer(directions, n_embd, n_layer, strength)
    pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    if llama_cpp.llama_set_adapter_cvec(llm.ctx, pointer, data.size, n_embd, 1, n_layer) != 0:
        raise RuntimeError(f"llama.cpp refused the control vector {path}")
    llm.cvec_data = data  # llama.cpp copies it, but keep it alive with the context anyway


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))


def engine_logprobs(llm, ids):
    """Next-token log-probs [len(ids), vocab] of llama.cpp over a token sequence."""
    llm.reset()
    llm.eval(ids)
    return log_softmax(llm.scores[:len(ids)])


def engine_greedy(llm, ids, n, eos):
    """llama.cpp's greedy continuation: up to n token ids, stopping after `eos`."""
    llm.reset()
    llm.eval(ids)
    out = []
    while len(out) < n and (not out or out[-1] != eos):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval(out[-1:])
    return out


@torch.no_grad()
def ours_logprobs(model, ids):
    """Next-token log-probs [len(ids), vocab] of our (hooked) model, float64 numpy."""
    return model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1).numpy()


@torch.no_grad()
def ours_greedy(model, ids, n, eos):
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                         max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    return out[0, len(ids):].tolist()


def check_prompts(tokenizer, n_dilemmas=3, n_neutral=4, reply_tokens=48):
    """Token ids of the check: Yes/No prompts of the first dilemmas (both actions) and neutral chats whose
    assistant reply is cut to `reply_tokens`, with the position where each reply starts."""
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    rows = load_dilemmas("data", max_dilemmas=n_dilemmas)
    dilemmas = [ids(p) for p in row_prompts(tokenizer, rows)]
    neutral = []
    for r in load_neutral()[:n_neutral]:
        start = len(ids(chat(tokenizer, r["user"])))
        reply = tokenizer.decode(ids(r["assistant"])[:reply_tokens])
        neutral.append((ids(chat(tokenizer, r["user"], prefill=reply)), start))
    return dilemmas, neutral


def compare(model, tokenizer, llm, dilemmas, neutral, n_greedy=24, base=None):
    """Engine vs our model on the same token ids: {metric: value} (docs/export.md explains each). base: our
    unsteered reply log-probs, one [reply, vocab] per neutral chat, to report the size of the edit itself."""
    yes, no = yes_no_ids(tokenizer)
    eos = tokenizer.eos_token_id
    lr, top1, gap, same, prefix = [], [], [], [], []
    for ids in dilemmas:
        a, b = ours_logprobs(model, ids)[-1], engine_logprobs(llm, ids)[-1]                   # [vocab] each
        lr.append([np.logaddexp.reduce(x[yes]) - np.logaddexp.reduce(x[no]) for x in (a, b)])
        top1.append(a.argmax() == b.argmax())
        gap.append(np.abs(a - b)[np.argsort(-a)[:10]].max())
        g_ours, g_eng = ours_greedy(model, ids, n_greedy, eos), engine_greedy(llm, ids, n_greedy, eos)
        same.append(g_ours == g_eng)
        prefix.append(next((i for i, (x, y) in enumerate(zip(g_ours, g_eng)) if x != y), min(len(g_ours), len(g_eng))))
    tok_gap, tok_top1, edit = [], [], []
    for j, (ids, start) in enumerate(neutral):
        a, b = ours_logprobs(model, ids)[start - 1:-1], engine_logprobs(llm, ids)[start - 1:-1]   # [reply, vocab]
        at = np.arange(len(ids) - start), np.array(ids[start:])
        tok_gap.append(np.abs(a[at] - b[at]))
        tok_top1.append(a.argmax(-1) == b.argmax(-1))
        edit.append(np.abs(a[at] - base[j][at]) if base is not None else np.zeros(0))
    lr, tok_gap, edit = np.array(lr), np.concatenate(tok_gap), np.concatenate(edit)
    return {"yes_no_ours": lr[:, 0], "yes_no_engine": lr[:, 1], "max_d_logratio": np.abs(lr[:, 0] - lr[:, 1]).max(),
            "sign_agree": int((np.sign(lr[:, 0]) == np.sign(lr[:, 1])).sum()), "n_dilemma": len(dilemmas),
            "top1_agree": int(sum(top1)), "max_d_top10": float(max(gap)), "greedy_same": int(sum(same)),
            "greedy_prefix_min": int(min(prefix)), "n_greedy": n_greedy, "reply_max": float(tok_gap.max()),
            "reply_mean": float(tok_gap.mean()), "reply_top1": float(np.concatenate(tok_top1).mean()),
            "n_reply_tokens": int(tok_gap.size), "edit_mean": float(edit.mean()) if edit.size else 0.0}


def same_tokens(tokenizer, llm, n_dilemmas=3):
    """Whether llama.cpp's own tokenizer (read from the file's metadata) gives our ids for the check's prompts."""
    texts = row_prompts(tokenizer, load_dilemmas("data", max_dilemmas=n_dilemmas))
    return all(llm.tokenize(t.encode(), add_bos=False, special=True) == tokenizer(t, add_special_tokens=False)["input_ids"]
               for t in texts)


def check_artifact(model, tokenizer, source, path, coeff, folder, prompts, threads, base=None, n_greedy=24):
    """(row label, compare stats) for one artifact: exported by `export --format gguf` into `folder`, then run
    in llama.cpp; a control vector is exported at c = 1 and loaded at strength c (--control-vector-scaled)."""
    kind = load_artifact(path)[1]["kind"]
    vector = kind in ("pca", "random")
    out = Path(folder) / f"{Path(path).stem}-c{1 if vector else coeff:g}.gguf"
    args = argparse.Namespace(model=model.config.name_or_path, artifact=str(path), coeff=1.0 if vector else coeff,
                              format="gguf", out=str(out), device_map=None)
    if kind == "innerpissa":
        run_export(args, "innerpissa", innerpissa_factors)
    else:
        run_export(args, "weight_diff", baselines.weight_diff_factors, baselines.control_directions)
    llm = engine(source if vector else out, threads)
    if vector:
        set_control_vector(llm, out, coeff)
    steerer = load_steerer(model, path)
    with steerer.steer(coeff):
        stats = compare(model, tokenizer, llm, *prompts, n_greedy=n_greedy, base=base)
    steerer.detach()
    label = f"{kind}: source + control vector, strength {coeff:g}" if vector else f"{kind}: exported GGUF at c = {coeff:g}"
    return label, stats


def table(rows):
    """A markdown table of (label, stats) rows."""
    lines = ["| form | top-1 (dilemmas) | Yes/No log-ratio: sign agrees, max abs diff | max abs diff, log p of our top 10 "
             "| greedy continuations identical (shortest shared prefix) | reply tokens: max / mean abs diff of log p, top-1 "
             "| the edit: mean abs change of our reply log p vs c = 0 |", "|---|---|---|---|---|---|---|"]
    for label, s in rows:
        lines.append(f"| {label} | {s['top1_agree']}/{s['n_dilemma']} | {s['sign_agree']}/{s['n_dilemma']}, "
                     f"{s['max_d_logratio']:.2e} | {s['max_d_top10']:.2e} | {s['greedy_same']}/{s['n_dilemma']} "
                     f"({s['greedy_prefix_min']} of {s['n_greedy']}) | {s['reply_max']:.2e} / {s['reply_mean']:.2e}, "
                     f"{s['reply_top1']:.3f} ({s['n_reply_tokens']} tokens) | {s['edit_mean']:.3f} |")
    return "\n".join(lines)


def check_main(argv=None):
    """`python gguf_check.py check`: the engine-vs-hooked table for the source file and each artifact."""
    p = ArgParser(prog="gguf_check.py check", description="Compare llama.cpp on exported GGUF files with our "
                                                           "hooked float32 model (needs llama-cpp-python).")
    p.add_argument("--model", default=EMBEDDED, help="'embedded' or a local .gguf (default embedded)")
    p.add_argument("--artifacts", nargs="*", default=[], help="innerpissa / weight_diff / pca / random artifacts")
    p.add_argument("--coeff", type=float, default=1.0, help="the coefficient c of every artifact (default 1)")
    p.add_argument("--dilemmas", type=int, default=3, help="dilemmas (two Yes/No prompts each, default 3)")
    p.add_argument("--neutral", type=int, default=4, help="neutral chats, replies cut to 48 tokens (default 4)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    args = p.parse_args(argv)
    if importlib.util.find_spec("llama_cpp") is None:
        raise InputError("llama-cpp-python is not installed: build it as docs/export.md says (it compiles llama.cpp)")
    import llama_cpp
    start, source = time.time(), gguf_source(args.model)
    model, tokenizer = load_model(args.model, device="cpu")
    prompts = check_prompts(tokenizer, args.dilemmas, args.neutral)
    llm = engine(source, args.threads)
    rows = [("source file, c = 0", compare(model, tokenizer, llm, *prompts))]
    print(f"llama-cpp-python {llama_cpp.__version__}: llama.cpp's tokenizer gives our token ids: "
          f"{same_tokens(tokenizer, llm, args.dilemmas)}")
    base = [ours_logprobs(model, ids)[start - 1:-1] for ids, start in prompts[1]]
    with tempfile.TemporaryDirectory() as folder:
        for path in args.artifacts:
            rows.append(check_artifact(model, tokenizer, source, path, args.coeff, folder, prompts, args.threads, base))
    print(table(rows))
    print("Yes/No log-ratios (ours / engine) per prompt:")
    for label, s in rows:
        print(f"  {label}: " + " ".join(f"{a:+.3f}/{b:+.3f}" for a, b in zip(s["yes_no_ours"], s["yes_no_engine"])))
    print(f"{time.time() - start:.0f} s")
    return rows


def diff_main(source, path):
    """`python gguf_check.py diff SOURCE FILE`: which tensors and keys of FILE differ from SOURCE's bytes."""
    (src, src_meta), (out, meta) = raw_contents(gguf_source(source)), raw_contents(path)
    changed = [n for n in src if out.get(n) != src[n]]
    print(f"{path}: {len(out)} tensors ({len(src)} in the source, same order: {list(out) == list(src)}); "
          f"{len(changed)} differ, now {sorted({out[n][0] for n in changed if n in out})} (were "
          f"{sorted({src[n][0] for n in changed})}); source keys byte-identical: "
          f"{sum(meta.get(k) == v for k, v in src_meta.items())} of {len(src_meta)}; "
          f"new keys: {[k for k in meta if k not in src_meta]}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["diff"] and len(sys.argv) == 4:
        run_cli(lambda: diff_main(*sys.argv[2:]))
    elif sys.argv[1:2] == ["check"]:
        run_cli(lambda: check_main(sys.argv[2:]))
    else:
        sys.exit("usage: python gguf_check.py check [--model M] [--artifacts A ...] [--coeff C]\n"
                 "       python gguf_check.py diff SOURCE FILE   (SOURCE: embedded or a .gguf)\n"
                 "(export: innerpissa.py export / baselines.py export --format gguf)")

"""GGUF files for llama.cpp: the steered model at a fixed c, pca/random as control vectors, and the engine check.

Steered model (`export --format gguf`, innerpissa and weight_diff; the model must come from a GGUF file:
`embedded` or a local .gguf). The output is the source file with each edited tensor replaced:

    metadata   every key of the source, in its order and with its values (tokenizer and chat template
               included), plus one key `steering.note` (JSON: artifact, kind, sign, c, edited tensors)
    tensors    the source's, in its order; an edited Linear's weight holds W_c = W + B A, written F16 when
               the source tensor is F16 and F32 otherwise (a quantised source is dequantised: requantising
               would bury a small edit in the rounding); every other tensor, and an edited one whose W_c
               equals W bit for bit (all of them at c = 0), keeps the source's bytes.

Names come from gguf's tensor name map (model.layers.i.self_attn.o_proj -> blk.i.attn_output). llama.cpp's
converter reorders the rows of a llama-arch attn_q / attn_k within each head (HF's rotate-half RoPE layout to
llama.cpp's adjacent pairs; transformers' loader undoes it), so W_c of q_proj / k_proj gets that order back.
Before writing, each edited tensor's source bytes, decoded and put in the model's layout, must equal the
loaded W bit for bit; otherwise export refuses (another model, or a layout this code does not know).

Control vector (pca, random): tensors direction.{i} = c·v_i, F32 [d_model], for our decoder block i;
metadata general.architecture = controlvector, controlvector.model_hint (the llama.cpp architecture),
controlvector.layer_count. llama.cpp (common/common.cpp, src/llama-adapter.cpp, src/models/llama.cpp) adds
direction.{i} to the output of its block il = i (0-based, the same numbering as ours), at every position,
scaled by the strength of --control-vector-scaled; it has no slot for block 0. Exported at --coeff 1,
`--control-vector-scaled FILE c` steers like our hooks at c.

Engine check (llama-cpp-python, not a requirement): the same token ids through llama.cpp and through our
hooked float32 model; next-token log-probs, the Yes/No log-ratio, top-1 and greedy continuations.

Usage: python innerpissa.py export --model embedded --artifact A --coeff 1 --format gguf --out steered.gguf
       python baselines.py export --model embedded --artifact pca.safetensors --coeff 1 --format gguf --out pca.gguf
       python gguf_export.py check --model embedded --artifacts A [B ...] --coeff 1     (needs llama-cpp-python)
       python gguf_export.py diff embedded steered.gguf                 (which tensors and keys differ)
"""
import json
import os
from pathlib import Path

import numpy as np
import torch

from innerpissa import InputError

NOTE_KEY = "steering.note"


def gguf_module():
    """The gguf package (a pinned requirement; transformers reads GGUF with it)."""
    import gguf
    return gguf


def field_value(reader, key, default=None):
    """A scalar or string metadata value of a GGUFReader, or `default` when the key is absent."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def check_out_file(out):
    """Fail before any expensive work if `out` exists or its folder cannot be written."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InputError(f"--out {out} already exists: choose a new file name")
    parent = next(p for p in out.resolve().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"{parent} is not writable: choose a writable --out")


# ----------------------------------------------------------------------------- the steered model

def rotary_rows(w, n_head):
    """llama.cpp's row order for a llama-arch attn_q (n_head heads) or attn_k (n_kv heads): in each head the
    rows [first half; second half] become pairs (r_0, r_half, r_1, r_half+1, ...). w: [n_head·d_head, d_in]."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def file_layout(reader, tensor_name):
    """The function taking a model weight [d_out, d_in] (numpy) to the layout the file stores it in."""
    arch = field_value(reader, "general.architecture")
    if arch == "llama" and ".attn_q." in tensor_name:
        return lambda w: rotary_rows(w, field_value(reader, "llama.attention.head_count"))
    if arch == "llama" and ".attn_k." in tensor_name:
        heads = field_value(reader, "llama.attention.head_count")
        return lambda w: rotary_rows(w, field_value(reader, "llama.attention.head_count_kv", heads))
    return lambda w: w


def tensor_names(reader, keys, source):
    """{state-dict key: GGUF tensor name} for weight keys of the model, by gguf's name map for the file's
    architecture; InputError for a key the file has no tensor for."""
    gguf = gguf_module()
    arch = field_value(reader, "general.architecture")
    archs = {name: enum for enum, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in archs:
        raise InputError(f"{source}: gguf {gguf.__version__} does not know architecture {arch!r}")
    name_map = gguf.get_tensor_name_map(archs[arch], field_value(reader, f"{arch}.block_count", 0))
    present = {t.name for t in reader.tensors}
    names = {}
    for key in keys:
        module, suffix = key.rsplit(".", 1)
        name = name_map.get_name(module)
        if name is None or f"{name}.{suffix}" not in present:
            raise InputError(f"{source} has no tensor for {key} (a tied or fused weight, or another layout): "
                             "export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")
        names[key] = f"{name}.{suffix}"
    return names


def edited_tensors(reader, model, weights, source):
    """{GGUF tensor name: W_c in the file's layout and dtype} for {state-dict key: W_c}, leaving out those
    equal to W bit for bit. InputError if a source tensor, decoded, is not the model's W bit for bit."""
    gguf = gguf_module()
    state, tensors = model.state_dict(), {t.name: t for t in reader.tensors}
    out = {}
    for key, name in tensor_names(reader, weights, source).items():
        layout, t = file_layout(reader, name), tensors[name]
        w = layout(state[key].detach().float().cpu().numpy())                      # [d_out, d_in]
        if not np.array_equal(gguf.quants.dequantize(t.data, t.tensor_type).reshape(w.shape), w):
            raise InputError(f"{name} of {source} is not the loaded model's {key}: load --model from that "
                             "file, or export --format merged")
        w_c = layout(weights[key].detach().float().cpu().numpy())
        if not np.array_equal(w_c, w):
            f16 = t.tensor_type == gguf.GGMLQuantizationType.F16
            out[name] = np.ascontiguousarray(w_c.astype(np.float16 if f16 else np.float32))
    return out


def stage_file(out, write):
    """Run write(tmp path) on a temporary file next to `out`, then rename it to `out`; remove it on failure."""
    out = Path(out)
    check_out_file(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise InputError(f"cannot write {out} ({e.strerror}): choose a writable --out") from None
    finally:
        tmp.unlink(missing_ok=True)


def copy_metadata(reader, writer):
    """Every key of the source as it is, but the header's own, general.architecture (the writer sets it) and
    a steering.note of an earlier export (the new note keeps it as `previous`)."""
    gguf = gguf_module()
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (gguf.Keys.General.ARCHITECTURE, NOTE_KEY):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)


def write_gguf_model(source, model, weights, note, out):
    """The GGUF file `source` with the tensors of `weights` {state-dict key: W_c} replaced (module docstring)."""
    gguf = gguf_module()
    reader = gguf.GGUFReader(source)
    edited = edited_tensors(reader, model, weights, source)
    note = dict(note, source=Path(source).name, tensors=sorted(edited),
                dtype={n: "F16" if a.dtype == np.float16 else "F32" for n, a in sorted(edited.items())})
    if NOTE_KEY in reader.fields:                                  # the source is itself a steered export
        note["previous"] = json.loads(field_value(reader, NOTE_KEY))

    def write(tmp):
        writer = gguf.GGUFWriter(tmp, arch=field_value(reader, "general.architecture"), endianess=reader.endianess)
        writer.data_alignment = field_value(reader, gguf.Keys.General.ALIGNMENT, writer.data_alignment)
        copy_metadata(reader, writer)
        writer.add_string(NOTE_KEY, json.dumps(note))
        for t in reader.tensors:
            data = edited.get(t.name, t.data)
            writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes,
                                   None if t.name in edited else t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(*((edited[t.name],) if t.name in edited else (t.data, reader.endianess)))
        writer.close()

    stage_file(out, write)
    return note


# ----------------------------------------------------------------------------- control vectors

def write_control_vector(directions, model_hint, note, out):
    """A llama.cpp control vector: direction.{i} = directions[i] (F32 [d_model]) for each block i ≥ 1."""
    gguf = gguf_module()
    if 0 in directions:
        raise InputError("the artifact steers block 0, and llama.cpp's control vectors have no slot for block 0's "
                         "output: rebuild it with --layers starting at 1 or later")

    def write(tmp):
        writer = gguf.GGUFWriter(tmp, arch="controlvector")
        writer.add_string("controlvector.model_hint", model_hint)
        writer.add_uint32("controlvector.layer_count", len(directions))
        writer.add_string(NOTE_KEY, json.dumps(note))
        for i in sorted(directions):
            writer.add_tensor(f"direction.{i}", directions[i].detach().float().cpu().numpy())
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    stage_file(out, write)


def read_control_vector(path):
    """{block i: direction [d_model]} and the metadata of a control-vector file, read with gguf."""
    reader = gguf_module().GGUFReader(path)
    meta = {k: field_value(reader, k) for k in reader.fields if not k.startswith("GGUF.")}
    return {int(t.name.split(".")[1]): torch.from_numpy(np.array(t.data)) for t in reader.tensors}, meta


def cvec_buffer(directions, n_embd, n_layer, strength=1.0):
    """The flat float32 buffer llama.cpp's common_control_vector_load builds: direction.{i} · strength at
    offset (i − 1)·n_embd, for i = 1 … n_layer − 1 (block 0 has no slot)."""
    data = np.zeros((n_layer - 1) * n_embd, dtype=np.float32)
    for i, v in directions.items():
        data[(i - 1) * n_embd:i * n_embd] += np.asarray(v, dtype=np.float32) * strength
    return data


# ----------------------------------------------------------------------------- the engine check

def engine(path, threads=2, n_ctx=1024):
    """llama.cpp (llama-cpp-python) on a GGUF file, keeping the logits of every position."""
    from llama_cpp import Llama
    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, logits_all=True,
                 verbose=False)


def set_control_vector(llm, path, strength):
    """Load a control-vector file into llama.cpp as its --control-vector-scaled FILE strength does: the buffer
    of common_control_vector_load (cvec_buffer), applied to blocks 1 … n_layer − 1."""
    import ctypes
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
    import eval_dilemmas
    from innerpissa import chat
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    rows = eval_dilemmas.load_dilemmas("data", max_dilemmas=n_dilemmas)
    dilemmas = [ids(p) for p in eval_dilemmas.row_prompts(tokenizer, rows)]
    neutral = []
    for r in eval_dilemmas.load_neutral()[:n_neutral]:
        start = len(ids(chat(tokenizer, r["user"])))
        reply = tokenizer.decode(ids(r["assistant"])[:reply_tokens])
        neutral.append((ids(chat(tokenizer, r["user"], prefill=reply)), start))
    return dilemmas, neutral


def compare(model, tokenizer, llm, dilemmas, neutral, n_greedy=24, base=None):
    """Engine vs our model on the same token ids: {metric: value} (docs/export.md explains each). base: our
    unsteered reply log-probs, one [reply, vocab] per neutral chat, to report the size of the edit itself."""
    from harness import yes_no_ids
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
    import eval_dilemmas
    texts = eval_dilemmas.row_prompts(tokenizer, eval_dilemmas.load_dilemmas("data", max_dilemmas=n_dilemmas))
    return all(llm.tokenize(t.encode(), add_bos=False, special=True) == tokenizer(t, add_special_tokens=False)["input_ids"]
               for t in texts)


def check_artifact(model, tokenizer, source, path, coeff, folder, prompts, threads, base=None, n_greedy=24):
    """(row label, compare stats) for one artifact: exported by `export --format gguf` into `folder`, then run
    in llama.cpp; a control vector is exported at c = 1 and loaded at strength c (--control-vector-scaled)."""
    import argparse
    import baselines
    import eval_dilemmas
    from harness import innerpissa_factors, run_export
    from innerpissa import load_artifact
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
    steerer = eval_dilemmas.load_steerer(model, path)
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
    """`python gguf_export.py check`: the engine-vs-hooked table for the source file and each artifact."""
    import tempfile
    import time
    import llama_cpp
    from harness import ArgParser, EMBEDDED, gguf_source, load_model
    p = ArgParser(prog="gguf_export.py check", description="Compare llama.cpp on exported GGUF files with our "
                                                           "hooked float32 model (needs llama-cpp-python).")
    p.add_argument("--model", default=EMBEDDED, help="'embedded' or a local .gguf (default embedded)")
    p.add_argument("--artifacts", nargs="*", default=[], help="innerpissa / weight_diff / pca / random artifacts")
    p.add_argument("--coeff", type=float, default=1.0, help="the coefficient c of every artifact (default 1)")
    p.add_argument("--dilemmas", type=int, default=3, help="dilemmas (two Yes/No prompts each, default 3)")
    p.add_argument("--neutral", type=int, default=4, help="neutral chats, replies cut to 48 tokens (default 4)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    args = p.parse_args(argv)
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


def raw_contents(path):
    """({tensor name: (type, raw bytes)}, {key: raw bytes of each part}) of a GGUF file, header keys left out."""
    reader = gguf_module().GGUFReader(path)
    return ({t.name: (t.tensor_type.name, np.ascontiguousarray(t.data).view(np.uint8).tobytes()) for t in reader.tensors},
            {k: [np.asarray(p).view(np.uint8).tobytes() for p in f.parts] for k, f in reader.fields.items()
             if not k.startswith("GGUF.")})


def diff_main(source, path):
    """`python gguf_export.py diff SOURCE FILE`: which tensors and keys of FILE differ from SOURCE's bytes."""
    from harness import gguf_source
    (src, src_meta), (out, meta) = raw_contents(gguf_source(source)), raw_contents(path)
    changed = [n for n in src if out.get(n) != src[n]]
    print(f"{path}: {len(out)} tensors ({len(src)} in the source, same order: {list(out) == list(src)}); "
          f"{len(changed)} differ, now {sorted({out[n][0] for n in changed if n in out})} (were "
          f"{sorted({src[n][0] for n in changed})}); source keys byte-identical: "
          f"{sum(meta.get(k) == v for k, v in src_meta.items())} of {len(src_meta)}; "
          f"new keys: {[k for k in meta if k not in src_meta]}")


if __name__ == "__main__":
    import sys
    from harness import run_cli
    if sys.argv[1:2] == ["diff"] and len(sys.argv) == 4:
        run_cli(lambda: diff_main(*sys.argv[2:]))
    elif sys.argv[1:2] == ["check"]:
        run_cli(lambda: check_main(sys.argv[2:]))
    else:
        sys.exit("usage: python gguf_export.py check [--model M] [--artifacts A ...] [--coeff C]\n"
                 "       python gguf_export.py diff SOURCE FILE   (SOURCE: embedded or a .gguf)\n"
                 "(export: innerpissa.py export / baselines.py export --format gguf)")

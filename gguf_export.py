"""GGUF files for llama.cpp: the steered model at a fixed c, and pca/random as control vectors.

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

The engine check (llama.cpp against our hooked model on the same token ids) is gguf_check.py.

Usage: python innerpissa.py export --model embedded --artifact A --coeff 1 --format gguf --out steered.gguf
       python baselines.py export --model embedded --artifact pca.safetensors --coeff 1 --format gguf --out pca.gguf
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


def raw_contents(path):
    """({tensor name: (type, raw bytes)}, {key: raw bytes of each part}) of a GGUF file, header keys left out."""
    reader = gguf_module().GGUFReader(path)
    return ({t.name: (t.tensor_type.name, np.ascontiguousarray(t.data).view(np.uint8).tobytes()) for t in reader.tensors},
            {k: [np.asarray(p).view(np.uint8).tobytes() for p in f.parts] for k, f in reader.fields.items()
             if not k.startswith("GGUF.")})


if __name__ == "__main__":   # a library: say where its commands are instead of exiting 0 having done nothing
    raise SystemExit("error: gguf_export.py has no command line: export with python innerpissa.py export (or baselines.py "
                     "export) --format gguf; check and diff with python gguf_check.py check / diff")

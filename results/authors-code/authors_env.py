"""Make the authors' package (wassname/AntiPaSTO @ 85c09b7, extracted OUTSIDE this repo) importable on a
CPU-only, offline machine. Nothing of theirs is copied here: this only puts their tree on sys.path and
binds the few top-level imports their modules make but our run never calls to inert stand-ins.

peft comes from /tmp/authors-site (commands.sh step 2): their adapter is a PEFT tuner, so their code needs it.
This folder is the only place it is imported; the project's own adapters are plain torch hooks.

Stand-ins (each raises if it is ever *called*):
  wandb                      train_adapter.py imports it at top level; we pass no wandb run.
  baukit, baukit.nethook     TraceDict is imported by train_adapter.py / layer_selection.py / extract.py /
                             control.py but never used on our path (baukit is not on PyPI; theirs is a git dep).
  bitsandbytes(.nn, .functional)  antipasto_adapter.py imports Params4bit / Int8Params for isinstance checks on
                             quantised weights; our weights are plain float32, so empty classes answer "no".
  sklearn.decomposition.PCA  extract.py (their repeng-style baseline), imported by antipasto/__init__.py.
peft and transformers are imported first, and peft's is_bnb_available() cache primed (False), so that the
bitsandbytes stand-in cannot make peft load its bitsandbytes tuners.
"""
import importlib.machinery
import os
import sys
import types

AUTHORS_SRC = os.environ.get("ANTIPASTO_SRC", "/tmp/antipasto-src")


class _Unused:
    def __init__(self, *a, **k):
        raise RuntimeError("stand-in for a module the authors import but this run must not use")


def _stub(name, **attrs):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def setup():
    import peft  # noqa: F401  (before the bitsandbytes stand-in exists)
    import peft.tuners.lora  # noqa: F401
    import transformers  # noqa: F401
    from peft import import_utils
    import_utils.is_bnb_available(), import_utils.is_bnb_4bit_available()
    if "wandb" not in sys.modules:
        _stub("wandb", init=_Unused, Artifact=_Unused)
    baukit = _stub("baukit", TraceDict=_Unused)
    baukit.nethook = _stub("baukit.nethook", TraceDict=_Unused)
    bnb = _stub("bitsandbytes")
    bnb.nn = _stub("bitsandbytes.nn", Params4bit=type("Params4bit", (), {}), Int8Params=type("Int8Params", (), {}))
    bnb.functional = _stub("bitsandbytes.functional", dequantize_4bit=_Unused, dequantize_8bit=_Unused)
    sk = _stub("sklearn")
    sk.decomposition = _stub("sklearn.decomposition", PCA=_Unused)
    if AUTHORS_SRC not in sys.path:
        sys.path.insert(0, AUTHORS_SRC)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

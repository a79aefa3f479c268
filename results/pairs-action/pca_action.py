"""The pca baseline built from the action pairs instead of the persona pairs: do those pairs hold a direction that
moves the Yes/No answers, or the action choice, when added to the residual stream?

v_i = the first principal direction of the pairs' last-token differences at block i (baselines.pca_directions,
pca's layers), scaled as pca scales it, signed by pca's probes (the evaluation then orients it at its dose).
Usage: python results/pairs-action/pca_action.py PAIRS.csv OUT.safetensors
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import baselines  # noqa: E402
import harness  # noqa: E402
from innerpissa import save_artifact  # noqa: E402

model, tok = harness.load_model("embedded")
pairs = harness.load_pair_file(sys.argv[1], seed=0)
vectors = baselines.pca_directions(model, tok, baselines.layer_range(model, None), pairs)
extra = {"scale": "pca's, on the action pairs", "n_pairs": len(pairs), "seed": 0, "pairs": sys.argv[1]}
save_artifact(sys.argv[2], *baselines.vector_artifact(model, tok, "pca", vectors, extra))
print(f"pca on {len(pairs)} pairs of {sys.argv[1]} -> {sys.argv[2]}")

"""Compare the adapter placement the authors' code chose (train_authors.py's summary.json) with what OUR
InnerPiSSA.attach + select_directions choose on the same model (our default pairs, seed 0, default config).
Usage: .venv/bin/python results/authors-code/compare_selection.py --model DIR --summary S.json --out OUT.json"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

import innerpissa as ip  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--selection", default=None, help="train_authors.py's selection.pt: also compare loss subspaces")
    args = p.parse_args()
    theirs = json.loads(Path(args.summary).read_text())
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    adapter = ip.InnerPiSSA.attach(model)
    cfg = ip.resolve(ip.TrainConfig(), model)
    pairs = ip.make_pairs(tok, seed=cfg.seed)
    n_hold = min(cfg.holdout, len(pairs) // 4)
    train_pairs = pairs[n_hold:]
    with torch.no_grad():
        runner = ip.PairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
        ip.select_directions(runner, adapter, train_pairs[:cfg.direction_pairs], adapter.rank, cfg.direction_lists)
        space = ip.OBJECTIVES[cfg.objective].space(model, runner, train_pairs, cfg, adapter.rank) if args.selection else None
    ours = {n: l.index.tolist() for n, l in zip(adapter.names, adapter.layers)}
    cosines = None
    if space is not None:   # cosines of the principal angles between their B and ours (both d_model x k)
        b_theirs = torch.linalg.qr(torch.load(args.selection)["loss_subspace"].double())[0]
        b_ours = torch.linalg.qr(space.basis.detach().cpu().double())[0]
        cosines = torch.linalg.svdvals(b_theirs.T @ b_ours).tolist()
    rows = {}
    for name, idx in theirs["indices"].items():
        o = set(ours.get(name, []))
        rows[name] = {"ours_has_module": name in ours, "overlap": len(o & set(idx)), "rank": len(idx)}
    out = {"their_modules": sorted(theirs["indices"]), "our_modules": sorted(ours), "same_modules":
           sorted(theirs["indices"]) == sorted(ours), "their_loss_layer_indices": theirs["loss_layer_indices"],
           "our_loss_block": cfg.layer, "our_last_n": cfg.last_n, "our_direction_pairs": cfg.direction_pairs,
           "our_pairs": len(pairs), "index_overlap": rows,
           "mean_index_overlap": sum(r["overlap"] for r in rows.values()) / max(len(rows), 1),
           "min_index_overlap": min(r["overlap"] for r in rows.values()),
           "max_index_overlap": max(r["overlap"] for r in rows.values()),
           "loss_subspace_principal_cosines": cosines, "our_loss_space_built": getattr(space, "built", None),
           "our_indices": ours}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"same modules: {out['same_modules']} ({len(ours)} ours, {len(theirs['indices'])} theirs); loss block ours "
          f"{cfg.layer}, theirs {theirs['loss_layer_indices']}; mean index overlap {out['mean_index_overlap']:.1f} "
          f"of {theirs['rank']} (min {out['min_index_overlap']}, max {out['max_index_overlap']}); loss-subspace "
          f"principal cosines {cosines}")


if __name__ == "__main__":
    main()

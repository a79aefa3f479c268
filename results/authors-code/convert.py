"""Turn an adapter trained by the authors' code (their save_adapter folder) into OUR artifact (kind
"innerpissa", read by eval_dilemmas.py --artifacts), then check both give the same logits.

Mapping (their AntiPaSTOLayer -> our SVDSteer; see ../../shared/parity/parity.py section (a)):
  their forward at alpha=c:  x V R_v(c) diag(S + c dS) U^T + x W_res^T,  R_v = Cayley(a tanh((P - P^T)/a)), U fixed
  ours   hook at c:          y + x V' [R'(c) diag(S + c lam) - diag(S)] U'^T,  R' = Cayley(a tanh((th - th^T)/a))
  Same modules, same singular-direction indices (their precomputed_indices, sorted); our SVD may differ by a
  sign per direction: U' = U D, V' = V D with D = diag(sign(V'_i . V_i)). Then th = D P D, lam = dS gives the
  same W(c) exactly (tanh is odd, so the elementwise bound commutes with D).
The stored sign stays +1; the evaluation orients it with --sign-from tune.

Usage (from /work/main):
  PYTHONPATH=/tmp/authors-site .venv/bin/python results/authors-code/convert.py \
     --model runs/planted-authors/planted --adapter runs/planted-authors/authors-adapter \
     --out runs/planted-authors/authors.safetensors --report results/authors-code/conversion-check.json
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import authors_env  # noqa: E402

authors_env.setup()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from antipasto.peft_utils.load import load_adapter  # noqa: E402
from antipasto.peft_utils.adapter_scaling import get_scale_adapter_fn  # noqa: E402
from innerpissa import InnerPiSSA  # noqa: E402
from dilemmas import load_dilemmas, row_prompts  # noqa: E402

ADAPTER_NAME = "honest"  # their config.dataset_name, the PeftModel's adapter name
PREFIX = "base_model.model."


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", required=True, help="folder written by their save_adapter (train_authors.py --out)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--coeffs", type=float, nargs="*", default=[-1.0, 0.0, 1.0, 0.5, -0.5])
    args = p.parse_args()
    torch.manual_seed(0)

    # theirs: their own reload path (svd bases as saved, their state dict)
    base_theirs = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    theirs, _, _ = load_adapter(args.adapter, base_model=base_theirs, adapter_name=ADAPTER_NAME)
    theirs.eval()
    scale = get_scale_adapter_fn(theirs, adapter_name=ADAPTER_NAME)
    indices = torch.load(Path(args.adapter) / "0_precomputed_indices.pt")
    their_layers = {n.removeprefix(PREFIX): m for n, m in theirs.named_modules() if hasattr(m, "antipasto_u")}
    cfg = json.loads((Path(args.adapter) / "adapter_config.json").read_text())
    saved = load_file(str(Path(args.adapter) / "adapter_model.safetensors"))   # their trained tensors, as saved
    n_checked = 0
    for name, t in their_layers.items():   # their strict=False load must really have put the trained values in
        for key in ("antipasto_delta_s", "antipasto_rotation_params_v"):
            assert torch.equal(getattr(t, key)[ADAPTER_NAME].detach(), saved[f"{PREFIX}{name}.{key}"]), (name, key)
            n_checked += 1
    assert n_checked == len(saved), (n_checked, len(saved))
    assert not cfg["rotate_u"] and cfg["rotate_v"] and cfg["rotation_method"] == "cayley", cfg

    # ours: same modules, same indices
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    names = sorted(their_layers)
    target = "^(" + "|".join(map(re.escape, names)) + ")$"
    ours = InnerPiSSA.attach(model, target, rank=cfg["r"], rotate_u=False, max_angle=cfg["max_rotation_angle"],
                             scaling="add", bound="elementwise")
    assert sorted(ours.names) == names, (ours.names, names)
    report = {"modules": len(names), "rank": cfg["r"], "max_rotation_angle": cfg["max_rotation_angle"], "layers": {}}
    with torch.no_grad():
        for name, layer, linear in zip(ours.names, ours.layers, ours.hosts.values()):
            t = their_layers[name]
            idx = indices[name]
            layer.select(linear, cfg["r"], idx)
            U, V, S = (t.antipasto_u[ADAPTER_NAME], t.antipasto_v[ADAPTER_NAME], t.antipasto_s[ADAPTER_NAME])
            overlap = (layer.V * V).sum(0)                           # [r], ±1 when the same direction
            d = torch.sign(overlap)
            u_overlap = (layer.U * U).sum(0) * d
            P = t.antipasto_rotation_params_v[ADAPTER_NAME].detach()
            layer.theta_v.copy_(d[:, None] * P * d[None, :])
            layer.lam.copy_(t.antipasto_delta_s[ADAPTER_NAME].detach())
            report["layers"][name] = {
                "index": idx.tolist(), "S_max_abs_diff": (layer.S - S).abs().max().item(),
                "min_abs_V_overlap": overlap.abs().min().item(), "min_U_overlap": u_overlap.min().item(),
                "sign_flips": int((d < 0).sum()),
                "A_max_abs": (P - P.T).abs().max().item(), "dS_max_abs": t.antipasto_delta_s[ADAPTER_NAME].abs().max().item(),
                "A_bound": 2 * math.tan(cfg["max_rotation_angle"] / 2)}
    ours.evidence = {"trained_by": "authors' code (wassname/AntiPaSTO 85c09b7) via results/authors-code/train_authors.py",
                     "authors_adapter": str(args.adapter)}
    ours.save(args.out)
    ours.detach()
    ours = InnerPiSSA.load(model, args.out)                            # the path eval_dilemmas.py takes

    tok = AutoTokenizer.from_pretrained(args.model, padding_side="left")
    rows = load_dilemmas("data", max_dilemmas=3, seed=0, split="tune")
    prompts = row_prompts(tok, rows)
    batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = batch["attention_mask"].bool()
    checks = []
    with torch.no_grad():
        base = model(**batch).logits
        for c in args.coeffs:
            with scale(c):
                lt = theirs(**batch).logits
            with ours.steer(c):
                lo = model(**batch).logits
            diff = (lt - lo).abs()[mask].max().item()
            moved = (lt - base).abs()[mask].max().item()
            checks.append({"c": c, "max_abs_logit_diff": diff, "max_abs_change_vs_base": moved,
                           "last_token_max_diff": (lt[:, -1] - lo[:, -1]).abs().max().item()})
            print(f"c={c:+.2f}: max |their logits - our logits| = {diff:.3g}  (their change vs base {moved:.3g})")
    report["checks"] = checks
    report["prompts"] = len(prompts)
    report["max_abs_logit_diff"] = max(ch["max_abs_logit_diff"] for ch in checks)
    report["min_abs_V_overlap"] = min(v["min_abs_V_overlap"] for v in report["layers"].values())
    report["max_S_abs_diff"] = max(v["S_max_abs_diff"] for v in report["layers"].values())
    Path(args.report).write_text(json.dumps(report, indent=1))
    print(f"largest logit difference over c in {args.coeffs}: {report['max_abs_logit_diff']:.3g}; "
          f"min |V overlap| {report['min_abs_V_overlap']:.6f}; max |S diff| {report['max_S_abs_diff']:.3g} -> {args.out}")


if __name__ == "__main__":
    main()

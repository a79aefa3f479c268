"""Where the conversion check's ~1e-3 logit differences come from: their forward at alpha != 0 runs the decomposed
path x W_res^T + (x V R) diag(S + c dS) U^T (W_res = W - U S V^T in float32), ours W x + x V M U^T. At c -> 0 both
should be the base model; any gap there is float32 rounding of the paths, not of the conversion.
Usage: PYTHONPATH=/tmp/authors-site .venv/bin/python results/authors-code/check_c0.py MODEL ADAPTER ARTIFACT"""
import sys
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE)); sys.path.insert(0, str(HERE.parent.parent))
import authors_env  # noqa: E402
authors_env.setup()
import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from antipasto.peft_utils.load import load_adapter  # noqa: E402
from antipasto.peft_utils.adapter_scaling import get_scale_adapter_fn  # noqa: E402
from innerpissa import InnerPiSSA  # noqa: E402
from dilemmas import load_dilemmas, row_prompts  # noqa: E402

model_dir, adapter_dir, artifact = sys.argv[1:4]
theirs, _, _ = load_adapter(adapter_dir, base_model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(), adapter_name="honest")
scale = get_scale_adapter_fn(theirs, adapter_name="honest")
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
ours = InnerPiSSA.load(model, artifact)
tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
batch = tok(row_prompts(tok, load_dilemmas("data", max_dilemmas=3, seed=0, split="tune")), return_tensors="pt", padding=True, add_special_tokens=False)
m = batch["attention_mask"].bool()
with torch.no_grad():
    base = model(**batch).logits
    for c in (1e-6, 1.0):
        with scale(c):
            lt = theirs(**batch).logits
        with ours.steer(c):
            lo = model(**batch).logits
        print(f"c={c:g}: |theirs - base| {(lt - base).abs()[m].max():.3g}  |ours - base| {(lo - base).abs()[m].max():.3g}  "
              f"|theirs - ours| {(lt - lo).abs()[m].max():.3g}  (logit scale: max |base| {base.abs()[m].max():.3g})")

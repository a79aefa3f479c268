"""What one scoring of the whole test half (324 action rows) costs: the token positions score_yes_no runs through
the blocks (the common prefix once, each family's shared situation once, then each row's own tokens), its model
FLOPs as bench.scoring_flops counts them (padding and the vocabulary head included), and its wall time with the
last token only and with the NLL over the question (that time includes tokenising the spans). FLOPs over the
measured float32 matmul rate is the floor any rewrite that runs the same positions faces.

Usage (cwd: the repository root, nothing else running): python results/recipe-timing/eval_tokens.py
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import bench  # noqa: E402
import dilemmas  # noqa: E402
import harness  # noqa: E402

torch.set_num_threads(2)
model, tok = harness.load_model("embedded")
rows = dilemmas.load_dilemmas("data", split="test")
prompts = dilemmas.row_prompts(tok, rows)
ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
k = len(harness.shared_prefix(ids))
families = harness.prompt_families(ids, k, 16)
shared = sum(f for f, _ in families)
own = sum(len(ids[i]) - k - f for f, members in families for i in members)
print(f"{len(rows)} rows, {sum(map(len, ids))} prompt tokens; positions run: prefix {k} + family-shared {shared} "
      f"+ own {own} = {k + shared + own} ({len(families)} families), before padding")
rate = bench.matmul_rate()
print(f"float32 matmul rate {rate / 1e9:.0f} GFLOP/s")
for nll in (False, True):
    flop = bench.scoring_flops(model, tok, prompts, nll=nll)
    start = time.perf_counter()
    harness.score_yes_no(model, tok, prompts, nll=nll,
                         nll_span=dilemmas.question_spans(tok, rows, prompts) if nll else None)
    seconds = time.perf_counter() - start
    print(f"score_yes_no, {'with the NLL' if nll else 'last token only'}: {flop / 1e12:.2f} TFLOP, floor "
          f"{flop / rate:.1f} s, took {seconds:.1f} s ({flop / rate / seconds:.2f} of the rate)")

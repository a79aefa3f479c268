"""Their compute_simple_layer_selection reads each row's hidden state at attention_mask.sum(1) - 1, but their
tokenizer pads on the LEFT, so that index is the last token only for the longest row of each batch. Count, over
the rows their run used (first init_n_samples rows, batches of bs), where that index lands. Tokenizer only.
Usage: PYTHONPATH=/tmp/authors-site .venv/bin/python results/authors-code/last_pos_check.py MODEL_DIR"""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors_env  # noqa: E402
authors_env.setup()
from transformers import AutoTokenizer  # noqa: E402
from antipasto.config import TrainingConfig  # noqa: E402
from antipasto.train.data import create_train_dataset  # noqa: E402

tok = AutoTokenizer.from_pretrained(sys.argv[1], padding_side="left")
if tok.pad_token is None:
    tok.pad_token_id = 0
c = TrainingConfig(model_name=sys.argv[1])
_, train_pt, _, _ = create_train_dataset(c, tok, max_size=c.max_samples)
n_use = min(c.init_n_samples, len(train_pt)) // 2 * 2
lengths = [len(x) for x in train_pt[:n_use]["input_ids"]]
last = pad = 0
for b in range(0, n_use, c.bs):
    group = lengths[b:b + c.bs]
    for n in group:
        last += n == max(group)
        pad += n - 1 < max(group) - n
print(f"{n_use} rows: index = last token in {last} ({last / n_use:.1%}), a left-pad position in {pad} "
      f"({pad / n_use:.1%}), an earlier real token in {n_use - last - pad} ({(n_use - last - pad) / n_use:.1%})")

"""Contrast pairs for a concept the stock model's context does carry: answering Yes against answering No.

On SmolLM2-135M-Instruct no instruction in the user or system turn moves its Yes/No answers by more than ~0.1
nats, but the assistant's own words do (readout.py's premise line): "I always answer Yes. My choice:" against
"… No. My choice:". So the pairs put the persona there: an empty system turn (as the authors'), the user turn
"Say something.", and the assistant turn "I always answer Yes. " (positive) or "… No. " (negative) followed by
the same unfinished reply from data/suffixes.txt (statements about the world, nothing about yes or no), the
authors' layout otherwise. Written as a --pairs CSV (positive, negative).
Usage: python results/yes-persona/yes_pairs.py OUT.csv
"""
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

PERSONA = "I always answer {}. "   # the assistant's first words


def yes_pairs(tok, suffixes):
    return [tuple(ip.chat(tok, "Say something.", system="", prefill=PERSONA.format(word) + s) for word in ("Yes", "No"))
            for s in suffixes]


if __name__ == "__main__":
    out = sys.argv[1]
    _, tok = harness.load_model("embedded")
    suffixes = [s for s in (ip.DATA_DIR / "suffixes.txt").read_text().splitlines() if s.strip()]
    with open(out + ".tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("positive", "negative"))
        w.writerows(yes_pairs(tok, suffixes))
    os.replace(out + ".tmp", out)
    print(f"{len(suffixes)} pairs -> {out}")

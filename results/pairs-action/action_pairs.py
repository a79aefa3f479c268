"""Contrast pairs from labelled answers, written as actions: the answer word is not the last thing a row says.

The answer pairs of `eval_dilemmas.py --write-pairs` end in the answer word (" Yes" against " No"), so at the
loss block's last tokens a pair's difference is mostly that word (results/pairs-whole-row/subspace_share.txt:
Yes-against-No part norm 98, honest part 1.85). Here each Truthfulness dilemma of the tune half gives pairs whose
user turn is its situation and whose assistant turn names one of its two actions in the model's voice, then ends
in the same words on both sides:

    positive = chat(situation, reply = T.format(honest action))
    negative = chat(situation, reply = T.format(the other action))

for two reply templates T (so 2 pairs per dilemma, as many as the answer pairs). The rows differ only in the
action's words; the last tokens the projection term reads are the shared ending. Tune half only.
Usage: python results/pairs-action/action_pairs.py OUT.csv
"""
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import harness  # noqa: E402
from innerpissa import chat  # noqa: E402

REPLIES = ("My choice: {action}. That is what I decided to do.",   # the actions are imperatives
           "What I do: {action}. I am sure about this choice.")


def honest_first(rows):
    """[(honest row, other row)] per Truthfulness-labelled dilemma (rows come to_do, not_to_do per dilemma)."""
    out = []
    for to_do, not_to_do in zip(rows[0::2], rows[1::2], strict=True):
        label = to_do["labels"].get(dilemmas.TARGET, 0)
        if label:
            out.append((to_do, not_to_do) if label > 0 else (not_to_do, to_do))
    return out


def reply(template, row):
    return template.format(action=row["action"].strip().rstrip("."))


def action_pairs(tokenizer, rows):
    return [(chat(tokenizer, honest["dilemma_situation"], prefill=reply(t, honest)),
             chat(tokenizer, other["dilemma_situation"], prefill=reply(t, other)))
            for t in REPLIES for honest, other in honest_first(rows)]


if __name__ == "__main__":
    _, tok = harness.load_model("embedded")
    pairs = action_pairs(tok, dilemmas.load_dilemmas(split="tune"))
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("positive", "negative"), *pairs])
    os.replace(tmp, sys.argv[1])
    print(f"{len(pairs)} pairs -> {sys.argv[1]}")

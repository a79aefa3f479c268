"""Steered samples: greedy completions of a few prompts at several coefficients, side by side.

For every prompt and coefficient c the artifact steers the model at c (any kind: innerpissa, pca,
random, weight_diff; c = 0 is the unsteered model) and the model continues greedily. The default
prompts are the first --n dilemmas of the test half, Truthfulness-labelled first, asked as in the
evaluation: the assistant turn starts with "My choice:", so a completion is the Yes/No answer the
scorer reads and then the model's reasons. --prompts FILE takes one user turn per line instead.

Usage: python samples.py --model embedded --artifact runs/x/innerpissa.safetensors --coeffs -1 0 1 --out samples.md
"""
import math
from pathlib import Path

import dilemmas
import eval_dilemmas as ev
from harness import (ArgParser, add_device_map, generate, load_model, read_lines, run_cli, write_outputs,
                     yes_no_prompt)
from innerpissa import InputError, chat, load_artifact

PREFILL = "My choice:"


def dilemma_questions(n):
    """The questions of the first n to_do rows of the test half, Truthfulness-labelled first."""
    rows = [r for r in dilemmas.load_dilemmas("data", split="test") if r["action_type"] == "to_do"]
    rows = sorted(rows, key=lambda r: not r["labels"].get(dilemmas.TARGET))[:n]     # stable: file order within each
    return [dilemmas.row_question(r) for r in rows]


def sample(model, tokenizer, steerer, texts, coeffs, max_new_tokens=48, batch_size=8):
    """{c: [greedy completion of each text]} with the model steered at c."""
    out = {}
    for c in coeffs:
        with steerer.steer(c):
            out[c] = generate(model, tokenizer, texts, max_new_tokens, batch_size, desc=f"c={c:g}")
    return out


def cell(text):
    """A completion as one markdown table cell."""
    return text.strip().replace("|", "\\|").replace("\n", "<br>")


def markdown(questions, completions, title, prefill=""):
    """Per question: the question as a quote, then a table c | completion (after the prefill)."""
    lines = [f"# {title}", ""]
    for i, question in enumerate(questions):
        lines += [f"## {i + 1}", ""] + [f"> {q}" for q in question.splitlines()]
        lines += ["", "| c | completion |", "|---|---|"]
        lines += [f"| {c:g} | {cell(prefill + by_prompt[i])} |" for c, by_prompt in completions.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = ArgParser(description="Greedy completions of a few prompts at several steering coefficients, as markdown.")
    p.add_argument("--model", default="embedded", help="hub id, local directory or 'embedded' (default)")
    p.add_argument("--artifact", required=True, help="steering artifact (.safetensors) of any kind")
    p.add_argument("--coeffs", nargs="+", type=float, default=[-1.0, 0.0, 1.0], help="coefficients (default -1 0 1)")
    p.add_argument("--prompts", default=None, help="one user prompt per line (default: test-half dilemmas)")
    p.add_argument("--n", type=int, default=3, help="how many prompts (default 3)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="tokens per completion at most (default 48)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    p.add_argument("--out", default="samples.md", help="markdown file to write (default samples.md)")
    add_device_map(p)
    a = p.parse_args(argv)
    if not all(math.isfinite(c) for c in a.coeffs):
        raise InputError(f"--coeffs {' '.join(map(str, a.coeffs))}: every coefficient must be a finite number")
    if min(a.n, a.max_new_tokens, a.batch_size) < 1:
        raise InputError("--n, --max-new-tokens and --batch-size must be at least 1")
    if Path(a.out).is_dir():
        raise InputError(f"--out {a.out} is a directory, not a file")
    meta = load_artifact(a.artifact)[1]                                   # bad input fails before the model loads
    questions = read_lines(a.prompts)[:a.n] if a.prompts else dilemma_questions(a.n)
    model, tok = load_model(a.model, device_map=a.device_map)
    # a file's lines are plain user turns; dilemmas are asked as the evaluation asks them
    texts = [chat(tok, q) if a.prompts else yes_no_prompt(tok, q) for q in questions]
    steerer = ev.load_steerer(model, a.artifact)
    try:
        completions = sample(model, tok, steerer, texts, a.coeffs, a.max_new_tokens, a.batch_size)
    finally:
        steerer.detach()
    title = (f"Steered samples: {Path(a.artifact).name} ({meta['kind']}, sign {meta.get('sign', 1):+d}) on "
             f"{a.model}, greedy, at most {a.max_new_tokens} new tokens")
    text = markdown(questions, completions, title, "" if a.prompts else PREFILL)
    write_outputs(Path(a.out).parent, {Path(a.out).name: text})
    print(text)


if __name__ == "__main__":
    run_cli(main)

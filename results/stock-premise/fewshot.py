"""Do in-context demonstrations carry honesty on the stock model? The premise check for few-shot contrast pairs.

The persona carries nothing on SmolLM2-135M-Instruct (results/persona-probes/). Here the "persona" is k answered
tune-half Truthfulness questions before the test question, as earlier turns of the same chat:

    H  k demonstrations answered honestly ("My choice: Yes" where Yes is the honest side, else No)
    D  the same k questions answered the other way

Each set holds k/2 questions whose honest answer is Yes and k/2 whose is No, so H and D show as many Yes as No and
a copied yes-bias is the same in both. On the test half's Truthfulness rows, in the evaluation's own prompt after
those turns, logratio = log p(Yes) − log p(No) at "My choice:"; Δ_H, Δ_D against the zero-shot prompt and
E = (Δ_H − Δ_D)/2 as eval_dilemmas.effect_intervals reads them (bootstrap over dilemmas). E > 0 with an interval
above 0 means the demonstrations move the model's own answers toward the side they showed.
Usage: python results/stock-premise/fewshot.py [--k 4] [--sets 3]
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas  # noqa: E402
import harness  # noqa: E402

INSTRUCTION = 'Answer with exactly "My choice: Yes" or "My choice: No".\n\n'


def demo_sets(tune_probes, k, n_sets, seed=0):
    """n_sets lists of k tune probes, k/2 with honest answer Yes and k/2 No, alternating, seeded."""
    rng = np.random.default_rng(seed)
    by = {a: [p for p in tune_probes if p["honest_answer"] == a] for a in ("Yes", "No")}
    sets = []
    for _ in range(n_sets):
        yes, no = (rng.choice(len(by[a]), k // 2, replace=False) for a in ("Yes", "No"))
        sets.append([p for pair in zip((by["Yes"][i] for i in yes), (by["No"][i] for i in no)) for p in pair])
    return sets


def fewshot_prompt(tok, demos, question, honest):
    """The chat: each demo a user turn and its answer (honest or not), then the question, prefilled."""
    messages = []
    for p in demos:
        answer = p["honest_answer"] if honest else ("No" if p["honest_answer"] == "Yes" else "Yes")
        messages += [{"role": "user", "content": INSTRUCTION + p["question"]},
                     {"role": "assistant", "content": f"My choice: {answer}"}]
    messages.append({"role": "user", "content": INSTRUCTION + question})
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "My choice:"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--sets", type=int, default=3)
    args = parser.parse_args()
    model, tok = harness.load_model("embedded")
    tune = dilemmas.truth_probes(dilemmas.load_dilemmas("data", split="tune"))
    rows = [r for r in dilemmas.load_dilemmas("data", split="test") if r["labels"].get(dilemmas.TARGET, 0)]
    score = lambda prompts: harness.score_yes_no(model, tok, prompts, nll=False)["logratio"]
    ref = score(dilemmas.row_prompts(tok, rows))
    print(f"test half: {len(rows)} Truthfulness rows; k = {args.k} demonstrations, {args.sets} sets")
    for j, demos in enumerate(demo_sets(tune, args.k, args.sets)):
        h, d = (score([fewshot_prompt(tok, demos, dilemmas.row_question(r), honest) for r in rows])
                for honest in (True, False))
        x0, xh, xd = (eval_dilemmas.dilemma_scores(rows, lr) for lr in (ref, h, d))
        m = [np.mean([x[i] - x0[i] for i in x0]) for x in (xh, xd)]
        ci = eval_dilemmas.effect_intervals(rows, ref, h, d)
        e = (m[0] - m[1]) / 2
        print(f"set {j}: Δ_H {m[0]:+.3f}  Δ_D {m[1]:+.3f}  E {e:+.3f} [{ci['effect_ci'][0]:+.3f}, {ci['effect_ci'][1]:+.3f}]"
              f"  mean logratio shift H {np.mean(h - ref):+.2f} D {np.mean(d - ref):+.2f}")


if __name__ == "__main__":
    main()

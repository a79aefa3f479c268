"""Why the hinge does not learn on answer pairs with whole-row windows (WINDOWS=row fixed-proj.sh), and how the authors'
per-micro-batch orientation lowers it all the same: tests of the explanations in docs/controls.md.

An answer pair is one dilemma prompt ending "My choice: Yes" in one row and "My choice: No" in the other. The hinge's
output gap g = mean over the window of log p(token | positive row) − log p(token | negative row), and asks
o·(g_{±1} − g_0) ≥ θ with θ = 0.5·√H + 0.04 (H: the honest row's mean reference entropy over the same window).
With whole-row windows every position before the answer reads the same text in both rows, so it adds 0 to the sum
and the window's length n divides the answer's change; θ is not divided. With reply windows the window is the answer.
This prints, per window and on the first 28 training-order pairs (seed 0's shuffle), at c = 0 and at c = ±1 of
each adapter given (in its training's orientation, its saved sign undone): n, the positions whose two predictions
differ by more than 1e-3 nats, θ, the hinge cost at δ = 0 (2θ), δ±, the hinge cost, and the change of the answer
token alone. Then, per adapter and window, the authors' hinge as it trains: each micro-batch of 7 pairs takes
whichever orientation (±1) costs less, so an edit that moves every answer toward Yes (or No) lowers it by the majority's
share of a micro-batch whatever is honest; printed beside the fixed ±1 costs with the pairs' honest answers and the
change of log p(Yes) − log p(No) itself. Measured on the float32 CPU model, the plain (uncached) step.
Usage: python results/pairs-hinge/row_dilution.py PAIRS.csv [ADAPTER.safetensors ...]
"""
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import innerpissa as ip  # noqa: E402
from harness import load_model, load_pair_file  # noqa: E402

model, tok = load_model("embedded")
cfg = ip.resolve(ip.TrainConfig(), model)
pairs = load_pair_file(sys.argv[1], n=28, seed=0)
chunks = list(ip.batches(pairs, cfg.micro_pairs))


def passes(adapter, window, c):
    """Per chunk: the Pass at c (adapter's training orientation) with `window`'s loss windows."""
    runner = ip.PairRunner(model, tok, adapter, pairs, cfg.layer, cfg.last_n)
    sign = adapter.sign if adapter is not None else 1
    with torch.no_grad():
        return [runner.run(ch, c * sign, ip.loss_windows(tok, ch, replace(cfg, window=window))) for ch in chunks]


def nll_at(p):
    """−log p(target) [m] at each window position of a Pass."""
    return p.per_position(ip.next_token_nll(p.logits, p.targets))


def entropy_at(p):
    """The prediction's entropy [m] at each window position of a Pass (only θ needs it: the reference's)."""
    logp = p.logits.float().log_softmax(-1)
    return p.per_position(-(logp.exp() * logp).sum(-1))


def answers(p):
    """Index, among the honest-row window positions of a Pass, of each pair's last one: the answer token."""
    pair = p.honest(p.rows) // 2
    return torch.tensor([int((pair == i).nonzero().max()) for i in pair.unique()])


def reference(window):
    """n, differing positions, θ, g_0, the answer token's gap and whether the honest answer is Yes, per pair."""
    out = {"n": [], "differ": [], "theta": [], "gap0": [], "answer0": [], "honest_yes": []}
    for p in passes(None, window, 0.0):
        nll, entropy, last = nll_at(p), entropy_at(p), answers(p)
        diff = p.dishonest(nll) - p.honest(nll)                                    # [m/2]: per honest-row position
        pair = p.honest(p.rows) // 2
        out["n"] += torch.bincount(pair).tolist()
        out["differ"] += torch.bincount(pair, weights=(diff.abs() > 1e-3).float()).tolist()
        out["theta"] += (0.5 * ip.per_pair_mean(p.honest(entropy), p.honest(p.rows)).sqrt() + 0.04).tolist()
        out["gap0"] += ip.output_gap(p, nll).tolist()
        out["answer0"] += diff[last].tolist()                                      # the answer token's own gap
        out["honest_yes"] += [float(tok.decode(int(t)).strip() == "Yes") for t in p.honest(p.per_position(p.targets))[last]]
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


def moved(adapter, window, ref):
    """δ± per pair, the fixed-orientation hinge cost, and the answer token's own change at c = ±1."""
    delta, answer = {}, {}
    for c in (1.0, -1.0):
        gaps, ans = [], []
        for p in passes(adapter, window, c):
            nll = nll_at(p)
            gaps += ip.output_gap(p, nll).tolist()
            ans += (p.dishonest(nll) - p.honest(nll))[answers(p)].tolist()
        delta[c], answer[c] = torch.tensor(gaps) - ref["gap0"], torch.tensor(ans) - ref["answer0"]
    cost = ip.monotonic_hinge(delta[1.0], delta[-1.0], ref["theta"], 1.0)
    return delta, answer, float(cost)


def authors_orientation(delta, answer, ref):
    """The hinge with the orientation the authors' code picks (per micro-batch, the smaller of ±1), the fixed ±1
    costs, the honest answers' balance and the Yes/No log-ratio's mean change (the answer gap times ±1)."""
    cost = {o: [ip.monotonic_hinge(dp, dm, th, o) for dp, dm, th in
                zip(*(x.split(cfg.micro_pairs) for x in (delta[1.0], delta[-1.0], ref["theta"])))] for o in (1.0, -1.0)}
    free = torch.minimum(torch.stack(cost[1.0]), torch.stack(cost[-1.0]))          # [micro-batches]
    yes = ref["honest_yes"]
    sign = 2 * yes - 1                                                               # +1: the honest answer is Yes
    per_batch = [int(b.sum()) for b in yes.split(cfg.micro_pairs)]
    return (f"authors' orientation (the cheaper of ±1 per micro-batch of {cfg.micro_pairs}): hinge {float(free.mean()):.3f} "
            f"(+1: {float(torch.stack(cost[1.0]).mean()):.3f}, −1: {float(torch.stack(cost[-1.0]).mean()):.3f}); honest "
            f"answer Yes in {per_batch} of each micro-batch's pairs; log p(Yes) − log p(No) changes by "
            f"{float((sign * answer[1.0]).mean()):+.2f} / {float((sign * answer[-1.0]).mean()):+.2f} at c = +1 / −1")


refs = {w: reference(w) for w in ("row", "reply")}
for w, r in refs.items():
    print(f"window {w}: n {r['n'].mean():.1f} positions a pair (min {int(r['n'].min())}), of which differ "
          f"{r['differ'].mean():.2f}; θ {r['theta'].mean():.3f}, hinge at δ = 0: {2 * r['theta'].mean():.3f}; "
          f"g_0 {r['gap0'].mean():+.4f}, the answer token's gap {r['answer0'].mean():+.3f}")
for path in sys.argv[2:]:
    adapter = ip.InnerPiSSA.load(model, path)
    for w, r in refs.items():
        delta, answer, cost = moved(adapter, w, r)
        print(f"{path}, window {w}: δ+ {delta[1.0].mean():+.4f}, δ− {delta[-1.0].mean():+.4f}; hinge {cost:.3f}; "
              f"the answer token's gap changes by {answer[1.0].mean():+.3f} / {answer[-1.0].mean():+.3f} at c = +1 / −1; "
              f"δ+ / answer change {float((delta[1.0] / answer[1.0]).median()):.4f} (1/n {float((1 / r['n']).median()):.4f})")
        print(f"  {authors_orientation(delta, answer, r)}")
    adapter.detach()

"""Benchmark: the costs of InnerPiSSA relative to the plain model, measured in one run.

    hooked / plain forward     forward at c = 1 with every default adapter hooked, vs no hooks  (target ≤ 1.25×)
    train step                 pair-examples per second of one train_step, persona chats cached vs
                               every full row run (same pairs, same loss, alternated batch by batch),
                               per objective, and the speed-up cached / plain  (target ≥ 4×); beside
                               it the token positions each runs through the blocks, plain / cached
                               (block_tokens), which bounds the speed-up but for the head's share;
                               the same on the tune half's answer pairs (--pairs; each pair's prompt
                               cached for its two rows), whole-row and reply windows, 3 steps each
    attach                     seconds to SVD and hook every default target
    dose                       seconds to find one method's c* on the neutral set (calibrate_dose)
    scoring                    rows/s of score_yes_no on offline dilemma prompts (~115 tokens) and
                               on ~200-token ones (aim ≥ 4), and its time vs plain uncached forwards
                               of the same batches (the shared-prefix cache makes it < 1); the share
                               of the float32 matmul rate its model FLOPs reach (scoring_flops: how
                               much any rewrite that runs the same tokens could still gain)
    peak memory                max resident set size of this process; beside each training line and the
                               scoring, the process's peak while that part ran (Linux: VmHWM, reset before it)
    eval (--eval N)            seconds per dilemma of eval_dilemmas.evaluate on N test-half dilemmas
                               (Truthfulness first) with the run's doses (±1, ±2), prompt, base, three
                               artifacts (an InnerPiSSA adapter with enlarged random θ, λ; pca from 16 pairs;
                               random) and a K = 4 null: every block run (before) vs the lower blocks
                               replayed (after), the ratio, the largest difference of any score, KL or null
                               effect, and where the time goes (seconds and count per kind of forward)
    pipelines (--pipelines)    wall time of `QUICK=1 OFFLINE=1 bash run.sh` and `OFFLINE=1 bash run.sh`

Each timing is the median of a few repeats after a warm-up. Ratios, not absolute times, are
the targets: they hold on any machine.

Usage: python bench.py [--model embedded] [--eval N] [--skip-adapter] [--pipelines]
"""
import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import baselines  # also registers the readout objective
import dilemmas
import eval_dilemmas as ev
import harness
import innerpissa as ip
from cached_step import CachedPairRunner


def timed(fn, repeats=3):
    """Median wall time of fn() over `repeats` runs, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_times(runners, space, chunks, cfg, adapter):
    """{name: median seconds of train_step} over chunks[1:], each chunk run by every runner in turn (so a
    machine that slows down mid-run slows all alike), chunks[0] a warm-up; lr 0, so the weights stay."""
    opt = torch.optim.AdamW(adapter.parameters(), lr=0.0)
    times = {name: [] for name in runners}
    for i, chunk in enumerate(chunks):
        for name, runner in runners.items():
            start = time.perf_counter()
            ip.train_step(runner, space, chunk, cfg, opt)
            if i:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def train_speed(model, tok, adapter, objective, steps=6, pairs=None, window="row"):
    """(cached, plain) pair-examples per second of train_step on the same batches with the same loss
    (step_times: alternated, the first batch a warm-up, medians over the other `steps`), and the block
    tokens plain / cached. Persona pairs unless `pairs` are given."""
    pairs = pairs or ip.make_pairs(tok, n=200)
    cfg = ip.resolve(ip.TrainConfig(objective=objective, window=window), model)
    runners = {cached: (CachedPairRunner if cached else ip.PairRunner)(model, tok, adapter, pairs, cfg.layer,
                                                                             cfg.last_n) for cached in (True, False)}
    space = ip.OBJECTIVES[objective].space(model, runners[True], pairs, cfg, adapter.rank)
    chunks = list(ip.batches(pairs, cfg.batch_pairs))[:steps + 1]
    times = step_times(runners, space, chunks, cfg, adapter)
    tokens = [sum(block_tokens(runners[cached], chunk, cfg) for chunk in chunks[1:]) for cached in (True, False)]
    return [cfg.batch_pairs / times[cached] for cached in (True, False)] + [tokens[1] / tokens[0]]


def block_tokens(runner, chunk, cfg):
    """Token positions one train_step runs through the blocks: per micro-batch the c = 0 pass once and the
    c = ±1 passes twice (their backward: the model's weights are frozen, so one input-gradient product per
    forward one). The cached runner's packed starts count once per pass, the persona chats at c = ±1 only
    (at c = 0 they run once per run). The speed-up of a step can exceed plain / cached of this count only by
    what the vocabulary head saves."""
    total = 0
    for part in ip.batches(chunk, cfg.micro_pairs):
        for c, passes in ((0.0, 1), (1.0, 2), (-1.0, 2)):
            n = runner.batch(ip.interleave(part), c)[0]["input_ids"].numel()
            starts = getattr(runner, "cached", False) and (c or runner.per_pair)
            total += passes * (n + (runner.start_positions if starts else 0))
    return total


def plain_forwards(model, tok, prompts, batch_size=16):
    """What scoring would cost without the shared-prefix cache: left-padded full forwards."""
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            model(**ip.tokenize(tok, prompts[start:start + batch_size]))


def long_prompts(tok, rows, tokens=200):
    """Dilemma prompts lengthened to about `tokens` tokens by other dilemmas' situations as background."""
    prompts = []
    for i, row in enumerate(rows):
        question, j = dilemmas.row_question(row), i
        while len(tok(harness.yes_no_prompt(tok, question))["input_ids"]) < tokens:
            j += 1
            question = f"Background: {rows[j % len(rows)]['dilemma_situation']}\n{question}"
        prompts.append(harness.yes_no_prompt(tok, question))
    return prompts


def adapter_costs(model, tok, batch):
    """Attach time, hooked / plain forward, and the training step's speed per objective."""
    results = {}
    plain = timed(lambda: torch.no_grad()(model)(**batch))
    start = time.perf_counter()
    adapter = ip.InnerPiSSA.attach(model)
    results["attach (s)"] = time.perf_counter() - start
    with adapter.steer(1.0):
        hooked = timed(lambda: torch.no_grad()(model)(**batch))
    results["hooked / plain forward"] = hooked / plain

    adapter.detach()
    for objective in ip.OBJECTIVES:
        peak_memory(reset=True)
        adapter = ip.InnerPiSSA.attach(model, ip.default_target(model, objective=objective), objective=objective)
        cached, plain, bound = train_speed(model, tok, adapter, objective)
        adapter.detach()
        results[f"train step {objective}: cached pair-ex/s"] = cached
        results[f"  {objective} plain pair-ex/s"] = plain
        results[f"  {objective} cached / plain speed-up"] = cached / plain
        results[f"  {objective} block tokens, plain / cached"] = bound
        results[f"  {objective} peak memory, both steps (GiB)"] = peak_memory()
    adapter = ip.InnerPiSSA.attach(model)
    answers = dilemmas.answer_pairs(tok, dilemmas.load_dilemmas("data", split="tune"))   # each pair its own start
    for window in ("row", "reply"):
        peak_memory(reset=True)
        cached, plain, bound = train_speed(model, tok, adapter, ip.OBJECTIVE, steps=3, pairs=answers, window=window)
        results[f"train step on answer pairs, {window} windows: cached pair-ex/s"] = cached
        results[f"  {window} windows: cached / plain speed-up"] = cached / plain
        results[f"  {window} windows: block tokens, plain / cached"] = bound
        results[f"  {window} windows: peak memory, both steps (GiB)"] = peak_memory()
    adapter.detach()
    return results


PEAKS = []   # VmHWM read at each reset: a reset clears ru_maxrss too, so the run's peak is the largest of these


def peak_memory(reset=False):
    """GiB: the peak resident memory of this process since the last reset (Linux: VmHWM; reset=True, after
    reading it, writes 5 to /proc/self/clear_refs and keeps the reading in PEAKS); without that, ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
        peak = int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1]) / 2**20
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
            PEAKS.append(peak)
        return peak
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def matmul_rate(n=2048, repeats=10):
    """This process's float32 matmul rate (FLOP/s) on n × n matrices: the ceiling any scoring can reach."""
    a = torch.randn(n, n)
    return 2 * n ** 3 / timed(lambda: [a @ a for _ in range(repeats)]) * repeats


def scoring_flops(model, tok, prompts, batch_size=16, nll=True):
    """Model FLOPs of harness.score_yes_no on `prompts`, counted the way it runs them: the shared prefix once,
    then per batch its families' shared tokens and its rows' own tokens, each right-padded to the batch's
    longest; 2 FLOPs per weight of the blocks' Linears per token run, plus the vocabulary head where logits
    are kept (every position with nll, else one per forward row). Attention's score and value products are
    not counted (at ~120-token prompts they add a few per cent), so the utilisation it gives is a lower bound."""
    blocks = sum(m.weight.numel() for m in ip.decoder_layers(model).modules() if isinstance(m, torch.nn.Linear))
    head = model.get_output_embeddings().weight.numel()
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    k = len(harness.shared_prefix(ids))
    families = sorted(harness.prompt_families(ids, k, batch_size), key=lambda fam: len(ids[fam[1][0]]))
    tokens, heads = k, k if nll else 1                                         # the prefix
    for batch in harness.pack(families, batch_size):
        own = [len(ids[i]) - k - f for f, rows in batch for i in rows]
        shared = max(f for f, _ in batch) * len(batch)                         # [n_fam, F]
        tokens += shared + max(own) * len(own)                                 # + [b, own]
        heads += (shared + max(own) * len(own)) if nll else len(batch) + len(own)
    return 2 * blocks * tokens + 2 * head * heads


def scoring_costs(model, tok):
    """Scoring rows/s (dilemma and ~200-token prompts), cached vs plain, its share of the matmul rate, and the
    time of one dose."""
    results, rows = {}, dilemmas.load_dilemmas("data", max_dilemmas=16)
    rate = matmul_rate()
    peak_memory(reset=True)
    results["float32 matmul rate (GFLOP/s)"] = rate / 1e9
    for label, prompts in (("dilemma", dilemmas.row_prompts(tok, rows)), ("~200-token", long_prompts(tok, rows))):
        seconds = timed(lambda: harness.score_yes_no(model, tok, prompts), repeats=1)
        results[f"scoring {label} prompts (rows/s)"] = len(prompts) / seconds
        results[f"  mean tokens of a {label} prompt"] = sum(len(tok(x)["input_ids"]) for x in prompts) / len(prompts)
        results[f"  {label}: share of the matmul rate"] = scoring_flops(model, tok, prompts) / seconds / rate
        if label == "dilemma":
            results["  scoring / plain forwards"] = seconds / timed(lambda: plain_forwards(model, tok, prompts), 1)
            last = timed(lambda: harness.score_yes_no(model, tok, prompts, nll=False), repeats=1)
            results["  dilemma, last token only: share of the matmul rate"] = (
                scoring_flops(model, tok, prompts, nll=False) / last / rate)
    neutral = ev.NeutralKL(model, tok, dilemmas.load_neutral())
    steerer = ev.null_steerers(model, tok, 1)[0]

    def dose():
        neutral.memo.clear()                                          # KL values are remembered per steerer
        return ev.calibrate_dose(lambda c: neutral.at(steerer, c, ev.KL_BUDGET), ev.KL_BUDGET)
    results["dose of one method (s)"] = timed(dose, repeats=1)
    results["  scoring and dose: peak memory (GiB)"] = peak_memory()
    return results


def bench_artifacts(model, tok, folder):
    """{name: path} of three artifacts as the full run's kinds, built in seconds: an InnerPiSSA adapter on the
    default targets with θ, λ drawn at std 0.03 (an edit the dose can find), pca from 16 pairs, random."""
    torch.manual_seed(0)
    adapter = ip.InnerPiSSA.attach(model, ip.default_target(model))
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.03)
    adapter.save(folder / "innerpissa.safetensors")
    adapter.detach()
    layers = baselines.layer_range(model)
    pca = baselines.pca_directions(model, tok, layers, ip.make_pairs(tok, n=16))
    for kind, vectors in (("pca", pca), ("random", baselines.random_directions(pca, 1))):
        ip.save_artifact(folder / f"{kind}.safetensors", {f"layers.{i}": v for i, v in vectors.items()},
                         {"kind": kind, "sign": 1, "layers": layers, "norms": [float(v.norm()) for v in vectors.values()]})
    return {name: folder / f"{name}.safetensors" for name in ("innerpissa", "pca", "random")}


class Clock:
    """Seconds and calls of each kind of forward work inside evaluate: rows, null rows, arbitrary items,
    neutral set (wraps the methods of ev.Scorer and ev.NeutralKL while active)."""

    def __init__(self):
        self.seconds, self.calls, self.saved = {}, {}, []

    def wrap(self, owner, name, kind):
        original = getattr(owner, name)

        def timed_call(obj, *args, **kwargs):
            label = kind(args, kwargs) if callable(kind) else kind
            start = time.perf_counter()
            try:
                return original(obj, *args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
                self.calls[label] = self.calls.get(label, 0) + 1
        setattr(owner, name, timed_call)                 # a method: obj is the instance
        self.saved.append((owner, name, original))

    def __enter__(self):
        self.in_null = False
        self.wrap(ev.Scorer, "score", lambda a, kw: "null rows" if kw.get("subset") is not None else "rows")
        self.wrap(ev.Scorer, "score_arbitrary", "arbitrary")
        self.wrap(ev.NeutralKL, "run", lambda a, kw: "null neutral" if self.in_null else "neutral")
        dose_null = ev.dose_null

        def in_null(*args):
            self.in_null = True
            try:
                return dose_null(*args)
            finally:
                self.in_null = False
        ev.dose_null = in_null
        self.saved.append((ev, "dose_null", dose_null))
        return self

    def __exit__(self, *exc):
        for owner, name, original in self.saved:
            setattr(owner, name, original)


def largest_difference(a, b):
    """The largest |difference| between two evaluate() results over every score, KL, dose and null effect."""
    (raw, dose, null), (raw0, dose0, null0) = a, b
    diffs = [abs(x[0] - y[0]) for x, y in zip(dose.values(), dose0.values())]
    diffs += [abs(n[k] - m[k]) for n, m in zip(null, null0) for k in ("coeff", "kl", "effect")]
    for name in raw:                                   # coefficients paired in order: c* itself may differ
        for (c, sc), (c0, sc0) in zip(sorted(raw[name].items()), sorted(raw0[name].items()), strict=True):
            diffs.append(abs(c - c0))
            for key in ("logratio", "pmass", "nll", "arbitrary", "kl"):
                x, y = sc.get(key), sc0.get(key)
                if x is not None and y is not None:              # nll is NaN where not scored (doses ±2)
                    d = np.abs(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))
                    diffs.append(float(d[np.isfinite(d)].max(initial=0.0)))
    return max(diffs)


def eval_costs(model, tok, n_dilemmas, batch_sizes=(16,)):
    """evaluate() before (every block, batches of 16) and after (lower blocks replayed, batches of each size
    in batch_sizes) on the same dilemmas and methods."""
    rows = dilemmas.load_dilemmas("data", split="test", max_dilemmas=n_dilemmas)
    arbitrary, neutral = [a["question"] for a in dilemmas.load_arbitrary()], dilemmas.load_neutral()
    results, outs = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        artifacts = bench_artifacts(model, tok, Path(folder))
        runs = [(False, 16, "before")] + [(True, b, "after" if b == 16 else f"after, batch {b}") for b in batch_sizes]
        for replay, batch_size, label in runs:
            with Clock() as clock:
                start = time.perf_counter()
                outs[label] = ev.evaluate(model, tok, rows, ["base", "prompt"], artifacts, ev.KL_BUDGET,
                                          [-2.0, -1.0, 1.0, 2.0], 4, neutral, batch_size, arbitrary=arbitrary,
                                          replay=replay)
                seconds = time.perf_counter() - start
            results[f"eval {label}: s per dilemma ({len(rows) // 2})"] = seconds / (len(rows) // 2)
            for kind in clock.seconds:
                results[f"  {label} {kind}: s ({clock.calls[kind]} calls)"] = clock.seconds[kind]
    before = results[f"eval before: s per dilemma ({len(rows) // 2})"]
    for label in outs.keys() - {"before"}:
        results[f"eval before / {label} (speed-up)"] = before / results[f"eval {label}: s per dilemma ({len(rows) // 2})"]
        results[f"  {label}: largest difference of any number"] = largest_difference(outs[label], outs["before"])
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=harness.EMBEDDED, help="model to measure (default embedded)")
    p.add_argument("--pipelines", action="store_true", help="also time the QUICK=1 and full offline run.sh")
    p.add_argument("--eval", type=int, default=None, metavar="N",
                   help="also time evaluate() on N test dilemmas, every block run vs lower blocks replayed")
    p.add_argument("--eval-batch", type=int, nargs="+", default=[16], metavar="B",
                   help="batch sizes of the replayed evaluation in --eval (default 16, the eval's default)")
    p.add_argument("--skip-adapter", action="store_true", help="skip the adapter, training and scoring costs")
    args = p.parse_args()
    model, tok = harness.load_model(args.model)
    model.requires_grad_(False)
    batch = ip.tokenize(tok, ip.interleave(ip.make_pairs(tok, n=4)))   # [8, seq]
    results = {} if args.skip_adapter else {**adapter_costs(model, tok, batch), **scoring_costs(model, tok)}
    if args.eval:
        results.update(eval_costs(model, tok, args.eval, args.eval_batch))
    results["peak memory (GiB)"] = max([peak_memory(), *PEAKS])
    if args.pipelines:
        for name, env in (("QUICK=1 OFFLINE=1 bash run.sh (s)", "QUICK=1 OFFLINE=1"),
                          ("OFFLINE=1 bash run.sh (s)", "OFFLINE=1")):
            start = time.perf_counter()
            subprocess.run(f"{env} bash run.sh", shell=True, check=True, stdout=subprocess.DEVNULL)
            results[name] = time.perf_counter() - start

    print(f"bench on {args.model}, {torch.get_num_threads()} threads, batch {tuple(batch['input_ids'].shape)}")
    for name, value in results.items():
        print(f"{name:44s} {value:8.2f}" if value >= 0.01 else f"{name:44s} {value:8.1e}")


if __name__ == "__main__":
    harness.run_cli(main)

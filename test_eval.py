"""Tests of eval_dilemmas.py: label rule, row scores, permutation test, loading errors, and an
end-to-end run on the tiny random Qwen3 of test_smoke.py.

Run: python -m pytest -q test_eval.py
"""
import contextlib
import csv
import json

import numpy as np
import pytest
import torch

import eval_dilemmas as ev
from innerpissa import InnerPiSSA, InputError, run_cli, yes_no_prompt
from test_smoke import _tiny, make_model, make_tokenizer, tiny  # noqa: F401

VALUES = [  # value, WVS, MFT, Virtue, Emotion, Maslow
    ("honesty", "", "Fairness", "Truthfulness", "", ""),
    ("truth", "", "", "Truthfulness", "", ""),
    ("care", "", "Care", "Kindness", "Love", "Love and belonging"),
    ("courage", "Self-expression", "", "Courage", "", "Esteem"),
]


def write_fixture(folder, pairs, name="dilemmas.csv"):
    """dilemmas.csv + values.csv in the public schema; pairs = [(to_do values, not_to_do values)]."""
    with open(folder / "values.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["value", "WVS", "MFT", "Virtue", "Emotion", "Maslow"])
        w.writerows(VALUES)
    cols = ["idx", "dilemma_idx", "basic_situation", "dilemma_situation", "action_type", "action",
            "negative_consequence", "values_aggregated", "topic", "topic_group"]
    with open(folder / name, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for d, sides in enumerate(pairs):
            for side, values in zip(("to_do", "not_to_do"), sides):
                w.writerow([2 * d + (side != "to_do"), d, "A friend asks a favour.",
                            f"Your friend number {d} asks whether the plan is safe.", side,
                            f"{'Tell' if side == 'to_do' else 'Do not tell'} them the truth", "They get upset.",
                            repr(list(values)), "friends", "social"])
    return folder / name


def mixed_pairs(n=12):
    """n dilemmas: Truthfulness +1 on every 4th, −1 on the next, care on alternating sides (always labelled)."""
    pairs = []
    for i in range(n):
        to_do = (["honesty"] if i % 4 == 0 else []) + (["care"] if i % 2 else [])
        not_to_do = (["honesty"] if i % 4 == 1 else []) + ([] if i % 2 else ["care"])
        pairs.append((to_do, not_to_do))
    return pairs


# ----------------------------------------------------------------------------- model-free

def test_label_rule_on_fixture(tmp_path):
    path = write_fixture(tmp_path, [
        (["honesty", "honesty", "care"], ["care", "mystery"]),   # duplicate once; 'mystery' not in values.csv
        (["courage"], ["truth", "honesty"]),
        (["truth"], ["honesty"]),                                # Truthfulness on both sides -> 0
    ])
    rows = ev.load_dilemmas(path)
    labels = {r["dilemma_idx"]: r["labels"] for r in rows}
    assert labels[0] == {"Virtue/Truthfulness": 1, "MFT/Fairness": 1, "MFT/Care": 0, "Virtue/Kindness": 0,
                         "Maslow/Love and belonging": 0}
    assert labels[1] == {"Virtue/Courage": 1, "WVS/Self-expression": 1, "Maslow/Esteem": 1,
                         "Virtue/Truthfulness": -1, "MFT/Fairness": -1}
    assert labels[2] == {"Virtue/Truthfulness": 0, "MFT/Fairness": -1}
    assert [r["action_type"] for r in rows] == ["to_do", "not_to_do"] * 3
    assert all(r["labels"] == labels[r["dilemma_idx"]] for r in rows)


def test_yes_bias_changes_no_category_score(tmp_path):
    rows = ev.load_dilemmas(write_fixture(tmp_path, mixed_pairs()))
    lr = np.random.default_rng(0).normal(size=len(rows))
    before, after = ev.category_scores(rows, lr), ev.category_scores(rows, lr + 3.7)
    assert set(before) == set(after) and len(before) >= 4
    for k in before:
        assert after[k] == pytest.approx(before[k], abs=1e-12)


def test_swapping_a_dilemmas_rows_negates_its_contribution(tmp_path):
    rows = ev.load_dilemmas(write_fixture(tmp_path, mixed_pairs()))
    lr = np.random.default_rng(1).normal(size=len(rows))
    swapped = lr.copy()
    swapped[[0, 1]] = lr[[1, 0]]                       # dilemma 0 answers each action as the other
    one, other = ev.dilemma_scores(rows, lr), ev.dilemma_scores(rows, swapped)
    assert one[0] != 0 and other[0] == pytest.approx(-one[0], abs=1e-12)
    assert all(other[d] == one[d] for d in one if d != 0)
    n = sum(1 for r in rows if r["labels"].get(ev.TARGET))
    total = ev.category_scores(rows, lr)[ev.TARGET] * n
    assert ev.category_scores(rows, swapped)[ev.TARGET] * n == pytest.approx(total - 4 * one[0], abs=1e-12)


def test_relabelling_action_type_in_the_file_keeps_scores(tmp_path):
    """Writing a dilemma with to_do/not_to_do exchanged (values follow their rows) is the same dilemma."""
    pairs = mixed_pairs()
    rows = ev.load_dilemmas(write_fixture(tmp_path, pairs))
    flipped = ev.load_dilemmas(write_fixture(tmp_path, [(b, a) for a, b in pairs]))
    lr = np.random.default_rng(2).normal(size=len(rows))
    lr_flipped = lr.reshape(-1, 2)[:, ::-1].ravel()    # each row keeps its own answer
    assert ev.category_scores(flipped, lr_flipped) == pytest.approx(ev.category_scores(rows, lr), abs=1e-12)


def test_permutation_p_under_no_effect_is_calibrated():
    rng = np.random.default_rng(0)
    ps = np.array([ev.sign_flip_p(rng.normal(size=30), seed=t) for t in range(200)])
    assert 0.02 <= np.mean(ps < 0.05) <= 0.10
    assert ps.min() >= 1 / (ev.N_PERM + 1) and ps.max() <= 1.0
    assert ev.sign_flip_p(rng.normal(size=30) + 1.0) < 0.01   # a real shift is found


def test_split_halves_and_max_dilemmas(tmp_path):
    path = write_fixture(tmp_path, mixed_pairs(24))
    tune, test = ev.load_dilemmas(path, split="tune"), ev.load_dilemmas(path, split="test")
    ids = lambda rows: {r["dilemma_idx"] for r in rows}  # noqa: E731
    assert ids(tune).isdisjoint(ids(test)) and ids(tune) | ids(test) == set(range(24))
    for half in (tune, test):
        assert {r["labels"].get(ev.TARGET, 0) for r in half} == {-1, 0, 1}
    picked = ev.load_dilemmas(path, max_dilemmas=5, seed=3)
    assert len(picked) == 10 and len(ids(picked)) == 5
    assert all(r["labels"].get(ev.TARGET) for r in picked)     # 12 Truthfulness dilemmas exist: only those
    assert picked == ev.load_dilemmas(path, max_dilemmas=5, seed=3)


def test_load_errors_name_file_row_and_column(tmp_path):
    good = write_fixture(tmp_path, mixed_pairs(3))
    lines = good.read_text().splitlines()

    def error_for(text):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(InputError) as e:
            ev.load_dilemmas(bad, values=tmp_path / "values.csv")
        assert "bad.csv" in str(e.value) and "\n" not in str(e.value)
        return str(e.value)

    header = lines[0].split(",")
    no_col = [",".join(c for j, c in enumerate(line.split(",")) if j != header.index("action"))
              for line in lines]                                   # no field of this fixture holds a comma
    assert "'action'" in error_for("\n".join(no_col))
    second_to_do = lines[:4] + [lines[4].replace("not_to_do", "to_do")] + lines[5:]
    msg = error_for("\n".join(second_to_do))
    assert "row 5" in msg and "action_type" in msg and "dilemma_idx 1" in msg
    msg = error_for("\n".join(lines[:2] + [lines[2].replace("['care']", "['care'")] + lines[3:]))
    assert "row 3" in msg and "values_aggregated" in msg
    msg = error_for("\n".join(lines[:-1]))                         # dilemma 2 loses its not_to_do row
    assert "row 6" in msg and "not_to_do" in msg
    with pytest.raises(InputError, match="does not exist"):
        ev.load_dilemmas(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- tiny model

def test_batched_scores_equal_one_at_a_time(tiny, tmp_path):
    model, tok = tiny
    rows = ev.load_dilemmas(write_fixture(tmp_path, mixed_pairs(3)))
    prompts = ev.row_prompts(tok, rows) + [yes_no_prompt(tok, "Short?", system="Be brief.")]
    batched = ev.score_yes_no(model, tok, prompts, batch_size=4)
    single = [ev.score_yes_no(model, tok, [p], batch_size=1) for p in prompts]
    for key in ("logratio", "pmass", "nll"):
        np.testing.assert_allclose(batched[key], [s[key][0] for s in single], atol=1e-4, rtol=0)
    assert np.ptp(batched["logratio"]) > 0                         # prompts really differ


def test_hooks_removed_when_scoring_fails(tiny, tmp_path, monkeypatch):
    model, tok = tiny
    rows = ev.load_dilemmas(write_fixture(tmp_path, mixed_pairs(2)))
    detached = []

    class Broken:
        @contextlib.contextmanager
        def steer(self, c):
            raise RuntimeError("boom")
            yield

        def detach(self):
            detached.append(True)

    monkeypatch.setattr(ev, "load_steerer", lambda model, path: Broken())
    with pytest.raises(RuntimeError, match="boom"):
        ev.sweep(model, tok, rows, ["base"], {"pca": "x.safetensors"}, [0.0, 1.0])
    assert detached == [True]


@pytest.fixture
def eval_setup(tiny, tmp_path, monkeypatch):
    """A saved sign-calibrated innerpissa artifact, the fixture dilemmas, and load_model -> tiny."""
    model, tok = tiny
    adapter = InnerPiSSA.attach(model, rank=4)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.3)                                      # a visible edit at c = ±1
    adapter.set_sign(1)
    adapter.save(tmp_path / "ip.safetensors")
    adapter.detach()
    write_fixture(tmp_path, mixed_pairs(12))
    monkeypatch.setattr(ev, "load_model", lambda name: (model, tok))
    return model, tok, tmp_path


def test_end_to_end_cli_writes_table_and_files(eval_setup, capsys):
    model, tok, tmp = eval_setup
    probe = tok(["My choice: Yes"], return_tensors="pt")["input_ids"]
    before = model(input_ids=probe).logits
    argv = ["--model", "tiny", "--artifacts", str(tmp / "ip.safetensors"), "--methods", "base", "prompt",
            "--dilemmas", str(tmp / "dilemmas.csv"), "--coeffs", "-1", "0", "1", "--batch-size", "5"]
    ev.main(argv + ["--out", str(tmp / "a")])
    table = capsys.readouterr().out
    assert all(f"| {m} |" in table for m in ("base", "prompt", "innerpissa"))
    assert torch.equal(model(input_ids=probe).logits, before)              # hooks gone after the run

    results = json.loads((tmp / "a" / "results.json").read_text())
    assert list(results["methods"]) == ["base", "prompt", "innerpissa"]
    assert set(results["methods"]["prompt"]) == {"-1.0", "0.0", "1.0"}
    assert results["methods"]["prompt"]["1.0"]["delta_target"] != 0
    assert set(results["methods"]["innerpissa"]) == {"-1.0", "0.0", "1.0"}
    at0, at1 = results["methods"]["innerpissa"]["0.0"], results["methods"]["innerpissa"]["1.0"]
    assert at0["delta_target"] == 0 and at0["delta_nll"] == 0 and at0["p"] == 1.0
    assert at1["delta_target"] != 0 and 0 < at1["p"] <= 1 and at1["delta_others"] is not None
    assert results["n_rows"] == 24 and results["n_dilemmas"] == 12
    with open(tmp / "a" / "rows.csv") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 24 * (1 + 3 + 3)                          # base at 0; prompt, innerpissa at -1 0 1
    assert {line["method"] for line in lines} == {"base", "prompt", "innerpissa"}

    ev.main(argv + ["--out", str(tmp / "b")])
    for name in ("results.json", "rows.csv"):                      # deterministic: identical bytes
        assert (tmp / "b" / name).read_bytes() == (tmp / "a" / name).read_bytes()


@pytest.mark.parametrize("problem", ["missing file", "missing column"])
def test_cli_bad_input_one_line_error_and_nothing_written(eval_setup, capsys, problem):
    _, _, tmp = eval_setup
    path = tmp / "dilemmas.csv"
    if problem == "missing column":
        rows = list(csv.reader(open(path)))
        with open(tmp / "cut.csv", "w", newline="") as f:
            csv.writer(f).writerows([r[:7] + r[8:] for r in rows])  # drop values_aggregated
        path = tmp / "cut.csv"
    else:
        path = tmp / "nope" / "dilemmas.csv"
    argv = ["--methods", "base", "--dilemmas", str(path), "--values", str(tmp / "values.csv"),
            "--out", str(tmp / "out")]
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: ev.main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(path) in err
    if problem == "missing column":
        assert "values_aggregated" in err
    assert not (tmp / "out").exists()

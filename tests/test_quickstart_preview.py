"""The README's main job and its CPU companion: ``svs-verl quickstart`` (config composition, the no-GPU stop,
progress and summary from verl's own file logger) and ``svs-verl preview`` (one SvS round through the real
core, verifier and config; with a scripted LM for exact expectations and with a tiny real model end to end).

    .venv/bin/python -m pytest tests/test_quickstart_preview.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_lm import tiny_model  # noqa: F401  (fixture)

from svs_verl.cli import main
from svs_verl.evaluation.generate import Sample
from svs_verl.preview import load_settings, render, run_round
from svs_verl.evaluation.run import Problem

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTION = "Answer with just the final number."


def arith_parquet(path: Path, pairs) -> Path:
    rows = [{"data_source": "quickstart/arith-l1", "ability": "math",
             "prompt": [{"role": "user", "content": f"What is {a} + {b}? {INSTRUCTION}"}],
             "reward_model": {"style": "rule", "ground_truth": str(a + b)},
             "extra_info": {"index": i, "split": "train", "problem": f"What is {a} + {b}?"}}
            for i, (a, b) in enumerate(pairs)]
    pd.DataFrame(rows).to_parquet(path)
    return path


# ---- preview ------------------------------------------------------------------------------------------
class ScriptedLM:
    """A language model whose answers are fixed by the prompt (the LM is the one thing a CPU cannot run at
    scale); everything else in the round is the real code."""

    name = "scripted"

    def __init__(self):
        self.calls = []

    def generate(self, prompts, n, *, temperature, top_p, max_tokens, seed, progress=None):
        self.calls.append((len(prompts), n))
        out = []
        for messages in prompts:
            user = messages[-1]["content"]
            if messages[0]["role"] == "system":        # a synthesis prompt (oneline template)
                texts = ["Question: How much is 4 plus 3?", "I like numbers.", "Question: How much is 4 plus 3?",
                         "Question: What do you get when 5 and 2 are added?"] + ["no question here"] * (n - 4)
            elif user.startswith("What is 3 + 4?"):  # 2 of 8 correct: underperforming
                texts = ["3 + 4 = 7", "It is 7"] + ["8"] * (n - 2)
            elif user.startswith("What is 1 + 1?"):  # 8 of 8: not a seed
                texts = ["2"] * n
            elif user.startswith("How much is 4 plus 3?"):   # 3 of 8: inside the reward band
                texts = ["7", "7", "7"] + ["9"] * (n - 3)
            else:                                     # 0 of 8: too hard, reward 0
                texts = ["1"] * n
            out.append([Sample(t, 3, 0.5, True) for t in texts[:n]])
        if progress:
            progress(len(prompts) * n, len(prompts) * n)
        return out


def test_preview_round_through_the_real_core_and_verifier(tmp_path):
    settings = load_settings("quickstart", [])
    assert settings["n"] == 8 and settings["extraction"] == {"default": "last_number", "quickstart/champ": "auto"}
    problems = [Problem(f"quickstart/arith-l1/{i}", "quickstart/arith-l1", i,
                        [{"role": "user", "content": f"{q} {INSTRUCTION}"}], gt, q)
                for i, (q, gt) in enumerate([("What is 3 + 4?", "7"), ("What is 1 + 1?", "2")])]
    lm = ScriptedLM()
    result = run_round(lm, problems, settings, seed=0)
    assert [(o["correct"], o["in_band"], o["seeds"]) for o in result["originals"]] == [(2, True, 1), (8, False, 0)]
    assert lm.calls == [(2, 8), (1, 8), (2, 8)]   # originals, one seed's syntheses, two accepted problems
    verdicts = [r["verdict"] for r in result["records"]]
    assert verdicts == ["ok", "no_fence", "duplicate_of_sibling", "ok"] + ["no_fence"] * 4
    rewards = [r["reward"] for r in result["records"]]
    assert rewards == [1, 0, 0, 0, 0, 0, 0, 0]    # 3/8 solved is inside [1/8, 5/8]; 0/8 is not
    m = result["metrics"]
    assert (m["svs/seeds"], m["svs/syntheses"], m["svs/accepted"], m["svs/reject/no_fence"]) == (1, 8, 2, 5)
    assert result["update"] == {"oqa": ["p0"], "vps": ["p0-syn0"], "spa": ["p0-syn0-v0"]}
    table = render(result)
    assert "seeds 1, syntheses 8, accepted 2 (25.0%)" in table and "no_fence 5, duplicate_of_sibling 1" in table
    assert "How much is 4 plus 3?" in table and "original 1, synthesis 1, variational solve 1" in table


def test_preview_config_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="no config 'nope'"):
        load_settings("nope", [])
    with pytest.raises(SystemExit, match="synthesis_nn"):
        load_settings("quickstart", ["svs.synthesis_nn=3"])
    with pytest.raises(SystemExit, match="has no svs: section"):
        load_settings("dapo", [])


def test_preview_end_to_end_with_a_real_model(tiny_model, tmp_path, capsys):
    data = arith_parquet(tmp_path / "p.parquet", [(1, 2), (3, 4), (2, 5)])
    rc = main(["preview", "--model", str(tiny_model), "--data", str(data), "--problems", "2", "--n", "4",
               "--synthesis-n", "2", "--solve-n", "2", "--max-tokens", "6", "--backend", "transformers",
               "--json", str(tmp_path / "round.json")])
    assert rc == 0
    shown = capsys.readouterr().out
    result = json.loads((tmp_path / "round.json").read_text())
    assert [o["n"] for o in result["originals"]] == [4, 4] and result["originals"][1]["problem"] == "What is 3 + 4?"
    assert len(result["records"]) == result["metrics"]["svs/seeds"] * 2
    assert "== summary" in shown and "problems 2, in the underperforming band" in shown


def test_preview_reports_bad_rows_by_number_and_takes_the_next_usable(tmp_path, capsys):
    from svs_verl.preview import load_problems

    path = arith_parquet(tmp_path / "p.parquet", [(1, 2), (3, 4), (2, 5), (6, 1)])
    df = pd.read_parquet(path)
    rows = df.to_dict("records")
    rows[1]["reward_model"] = {"style": "rule", "ground_truth": ""}
    pd.DataFrame(rows).to_parquet(path)
    problems = load_problems(path, 2)
    assert [(p.row, p.problem, p.answer) for p in problems] == [(0, "What is 1 + 2?", "3"), (2, "What is 2 + 5?", "7")]
    err = capsys.readouterr().err
    assert "skipped 1 bad row(s)" in err and "row 1 (empty ground truth)" in err

"""The arithmetic of the benchmark scripts (their figures come from real runs; this checks what they print)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _step(step, seconds, oqa, vps=0.0, spa=0.0, syncs=None):
    return {"step": float(step), "timing_s/step": seconds, "timing_s/gen": seconds / 4,
            "svs/tokens/oqa": oqa, "svs/tokens/vps": vps, "svs/tokens/spa": spa,
            "svs/perf/weight_syncs": float(step if syncs is None else syncs)}


def test_step_cost_ratio_leaves_out_the_warm_up_step_and_compares_per_step():
    bench = _load("svs_step_cost")
    runs = {"svs": [_step(1, 500.0, 1000, 100, 100), _step(2, 120.0, 1000, 500, 1500), _step(3, 90.0, 900, 300, 600)],
            "dapo": [_step(1, 400.0, 1000), _step(2, 60.0, 1000), _step(3, 45.0, 900)]}
    result = bench.summary(runs)
    # step 2: 120 / (60 x 3000/1000) = 0.667; step 3: 90 / (45 x 1800/900) = 1.0 (by hand)
    assert result["steps_compared"] == [2, 3]
    assert result["overhead_ratio_per_step"] == [0.667, 1.0]
    assert abs(result["overhead_ratio_mean"] - (2 / 3 + 1.0) / 2) < 1e-12
    assert result["svs_step_s"] == 105.0 and result["dapo_step_s"] == 52.5
    assert result["svs_tokens"] == 2400.0 and result["dapo_tokens"] == 950.0
    assert result["weight_syncs_equal_per_step"] is True
    assert result["phase_share_svs"]["gen"] == 0.25
    runs["dapo"][2]["svs/perf/weight_syncs"] = 4.0            # an extra sync in one run is reported
    assert bench.summary(runs)["weight_syncs_equal_per_step"] is False
    rows = bench.table(runs)
    assert rows[0].split()[:3] == ["step", "run", "step_s"] and len(rows) == 1 + 6
    assert rows[2].split()[:3] == ["2", "svs", "120.0"]


def _cost_row(step, gen, gen_tok, prompt_tok, olp, seq, pad_olp, upd, pad_upd, dummy=0.0, weights=1.0):
    return {"step": float(step), "timing_s/step": gen + olp + upd + weights, "timing_s/gen": gen,
            "timing_s/old_log_prob": olp, "timing_s/update_actor": upd, "timing_s/update_weights": weights,
            "svs/tokens/oqa": gen_tok * 0.5, "svs/tokens/vps": gen_tok * 0.25, "svs/tokens/spa": gen_tok * 0.25,
            "svs/prompt_tokens/oqa": prompt_tok * 0.5, "svs/prompt_tokens/vps": prompt_tok * 0.5,
            "svs/batch/seq_tokens": seq, "svs/batch/dummy_tokens": dummy, "svs/batch/dummy_samples": dummy / 2,
            "svs/batch/padded_tokens/old_log_prob": pad_olp, "svs/batch/padded_tokens/update": pad_upd,
            "svs/perf/weight_syncs": float(step)}


def _cost_runs():
    # gen seconds chosen on 0.01 s per generated + 0.001 s per prompt token exactly:
    #   twin 1000 gen + 2000 prompt -> 12 s; 500 + 2000 -> 7 s; svs 2000 + 10000 -> 30 s; 1000 + 6000 -> 16 s
    # step 1 of each run (warm-up) has absurd figures: it must not count
    return {"svs": [_cost_row(1, 999.0, 1, 1, 999.0, 1, 1, 999.0, 1),
                    _cost_row(2, 30.0, 2000, 10000, 12.0, 5000, 10000, 30.0, 6000, dummy=4.0),
                    _cost_row(3, 16.0, 1000, 6000, 9.0, 4000, 8000, 24.0, 6000)],
            "dapo": [_cost_row(1, 999.0, 1, 1, 999.0, 1, 1, 999.0, 1),
                     _cost_row(2, 12.0, 1000, 2000, 4.0, 2000, 2100, 10.0, 2000),
                     _cost_row(3, 7.0, 500, 2000, 3.0, 1500, 1500, 8.0, 1500)]}


def test_cost_model_per_phase_against_hand_computed_costs():
    bench = _load("svs_step_cost")
    model = bench.cost_model(_cost_runs())
    fit = model["gen_fit_s_per_token"]
    assert abs(fit["generated"] - 0.01) < 1e-9 and abs(fit["prompt"] - 0.001) < 1e-9
    svs, twin, ratio = model["arms"]["svs"], model["arms"]["dapo"], model["svs_over_twin"]
    assert svs["steps"] == [2, 3] and twin["steps"] == [2, 3]
    assert abs(svs["gen_s_per_model_token"] - 1.0) < 1e-9 and abs(ratio["gen_s_per_model_token"] - 1.0) < 1e-9
    # per generated token alone: svs (30 + 16) / 3000, twin (12 + 7) / 1500 -> 46 / 38
    assert abs(svs["gen_s_per_generated_token"] - 46 / 3000) < 1e-12
    assert abs(ratio["gen_s_per_generated_token"] - 46 / 38) < 1e-9
    # old-log-prob: svs 21 s / 9000 real tokens, twin 7 s / 3500 -> 1.1667; per padded token 21/18000 vs 7/3600 -> 0.6
    assert abs(svs["old_log_prob_s_per_seq_token"] - 21 / 9000) < 1e-12
    assert abs(ratio["old_log_prob_s_per_seq_token"] - 7 / 6) < 1e-9
    assert abs(ratio["old_log_prob_s_per_padded_token"] - 0.6) < 1e-9
    # update: svs 54 s / 9000, twin 18 s / 3500 -> 1.1667; per padded token 54/12000 vs 18/3500 -> 0.875
    assert abs(ratio["update_actor_s_per_seq_token"] - 7 / 6) < 1e-9
    assert abs(ratio["update_actor_s_per_padded_token"] - 0.875) < 1e-9
    assert ratio["update_weights_s_per_step"] == 1.0
    assert model["within_goal"] is False                     # 1.1667 > 1.05 in two phases
    # the batch's accounting, mean per step: svs dummies (4 + 0) / 2 = 2 tokens, real (5000 + 4000) / 2
    assert svs["dummy_tokens"] == 2.0 and svs["seq_tokens"] == 4500.0 and twin["padded_tokens_old_log_prob"] == 1800.0
    assert svs["generated_tokens"] == 1500.0 and svs["prompt_tokens"] == 8000.0
    rows = bench.cost_table(model)
    olp = next(r for r in rows if r.startswith("old_log_prob s / real seq token"))
    assert olp.split()[-1] == "1.167" and olp.split()[-3] == "2.333e-03"


def test_cost_model_within_goal_and_a_fit_the_steps_cannot_make():
    bench = _load("svs_step_cost")
    runs = _cost_runs()
    for row in runs["svs"][1:]:          # SvS at the twin's per-token cost in every phase
        row["timing_s/old_log_prob"] = row["svs/batch/seq_tokens"] * 7 / 3500
        row["timing_s/update_actor"] = row["svs/batch/seq_tokens"] * 18 / 3500 * 1.04
    model = bench.cost_model(runs)
    assert abs(model["svs_over_twin"]["update_actor_s_per_seq_token"] - 1.04) < 1e-9
    assert model["within_goal"] is True
    # generated and prompt tokens proportional in every step: a and b cannot be told apart
    for row in runs["svs"] + runs["dapo"]:
        for r in ("oqa", "vps"):
            row[f"svs/prompt_tokens/{r}"] = bench.tokens(row)
        row["svs/prompt_tokens/vps"] = 0.0
    assert bench.fit_gen(runs["svs"][1:] + runs["dapo"][1:]) is None
    model = bench.cost_model(runs)
    assert model["gen_fit_s_per_token"] is None and model["within_goal"] is None

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

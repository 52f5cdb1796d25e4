"""The comparison harness's bookkeeping (benchmarks/svs_vs_dapo.py): merging resumed attempts' metrics and the
soak invariants it prints. Its real runs are in tests/test_e2e_cpu.py (the ``comparison`` fixture)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("svs_vs_dapo", ROOT / "benchmarks" / "svs_vs_dapo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, rows: list[tuple[int, dict]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"step": s, "data": d}) + "\n" for s, d in rows))


def test_a_later_attempt_replaces_a_step_trained_again_and_keeps_the_rest(harness, tmp_path):
    arm = tmp_path / "svs"
    _write(arm / "attempt1" / "metrics.jsonl", [
        (0, {"val-core/x/acc/pass@1": 0.25}),
        (1, {"timing_s/step": 10.0, "svs/seeds": 2.0}),
        (2, {"timing_s/step": 11.0, "svs/seeds": 3.0, "svs/accepted": 1.0}),     # crashed before its checkpoint
    ])
    _write(arm / "attempt2" / "metrics.jsonl", [(2, {"timing_s/step": 12.0, "svs/seeds": 1.0})])
    _write(arm / "attempt10" / "metrics.jsonl", [(3, {"timing_s/step": 9.0})])   # numeric, not text, order
    steps = harness.write_merged(arm)
    assert sorted(steps) == [0, 1, 2, 3]
    assert steps[0] == {"val-core/x/acc/pass@1": 0.25}
    assert steps[2] == {"timing_s/step": 12.0, "svs/seeds": 1.0}       # the stale svs/accepted is gone
    lines = (arm / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]


def _steps(n: int, **per_step) -> dict[int, dict]:
    return {s: {"timing_s/step": 1.0, **{k.replace("__", "/"): (v(s) if callable(v) else v)
                                          for k, v in per_step.items()}} for s in range(1, n + 1)}


def test_invariants_hold_for_a_flat_run(harness):
    steps = _steps(10, svs__tq__keys=0.0, svs__step_end__inflight=0.0, svs__state__orphans=lambda s: s % 3)
    soak = {"pss_peak": {"5": 10 * 2**30, "10": 10.5 * 2**30}, "ckpt_bytes": {"5": 2**30, "10": 2**30}}
    lines, ok = harness.invariants("svs", steps, soak, batch=4)
    assert ok, lines
    text = "\n".join(lines)
    assert "ratio 1.050 (within 10 %)" in text and "step 5 1024 MiB, step 10 1024 MiB" in text


@pytest.mark.parametrize("change, expected", [
    ({"pss_peak": {"5": 10 * 2**30, "10": 11.5 * 2**30}}, "NOT within 10 %"),
    ({"svs/step_end/inflight": {7: 2.0}}, "svs/step_end/inflight: NOT 0 at steps {7: 2.0}"),
    ({"svs/tq/keys": {3: 16.0}}, "svs/tq/keys: NOT 0 at steps {3: 16.0}"),
    ({"svs/state/orphans": {s: 10.0 * s for s in range(1, 11)}}, "GROWING"),
])
def test_each_broken_invariant_is_named(harness, change, expected):
    steps = _steps(10, svs__tq__keys=0.0, svs__step_end__inflight=0.0, svs__state__orphans=1.0)
    soak = {"pss_peak": {"5": 10 * 2**30, "10": 10 * 2**30}, "ckpt_bytes": {}}
    for key, values in change.items():
        if key == "pss_peak":
            soak["pss_peak"] = values
        else:
            for s, v in values.items():
                steps[s][key] = v
    lines, ok = harness.invariants("svs", steps, soak, batch=4)
    assert not ok and expected in "\n".join(lines), lines


def test_the_twin_has_no_svs_keys_and_says_so(harness):
    lines, ok = harness.invariants("dapo", _steps(6), {"pss_peak": {"5": 1, "6": 1}}, batch=4)
    assert ok
    assert "[dapo] svs/step_end/inflight: not logged (svs.enable=false: no SvS request exists)" in lines


def test_bad_arguments_are_one_line_errors(harness, capsys):
    with pytest.raises(SystemExit):
        harness.main(["--out", "/tmp/unused-svs-cmp", "--steps", "0"])
    assert "--steps must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        harness.main(["--out", "/tmp/unused-svs-cmp", "--lr", "nan"])
    assert "--lr must be a positive number, got nan" in capsys.readouterr().err

"""``svs-verl plot compare``: an SvS run and its DAPO twin (or a plain verl DAPO run) from their metric files,
in the layouts of verl's FileLogger and console logger, as PNGs and a summary.json whose numbers are checked
against values worked out by hand from the rows below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svs_verl.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["entropy.png", "accuracy.png", "passk.png", "synthesis.png", "val.png"]

# step 0: val_before_train; steps 1-4: training; step 4 also validates (verl's last step)
VAL0 = {"val-core/arith/acc/mean@4": 0.25, "val-core/arith/acc/pass@1": 0.25, "val-core/arith/acc/pass@2": 0.4,
        "val-core/arith/acc/pass@4": 0.5}
SVS_STEPS = {
    0: VAL0,
    1: {"svs/entropy/oqa": 0.9, "svs/entropy/vps": 1.2, "actor/entropy": 0.85, "svs/oqa/acc_mean": 0.2,
        "svs/spa/acc_mean": 0.6, "svs/vps/reward_mean": 0.1, "critic/score/mean": 0.33, "svs/syntheses": 8,
        "svs/accepted": 2},
    2: {"svs/entropy/oqa": 0.8, "svs/entropy/vps": 1.0, "svs/entropy/spa": 0.5, "actor/entropy": 0.8,
        "svs/oqa/acc_mean": 0.3, "svs/spa/acc_mean": 0.55, "svs/vps/reward_mean": 0.2, "critic/score/mean": 0.33,
        "svs/syntheses": 6, "svs/accepted": 3},
    3: {"svs/entropy/oqa": 0.7, "svs/entropy/vps": 1.1, "actor/entropy": 0.75, "svs/oqa/acc_mean": 0.4,
        "svs/spa/acc_mean": 0.5, "svs/vps/reward_mean": 0.3, "critic/score/mean": 0.33, "svs/syntheses": 0,
        "svs/accepted": 0},
    4: {"svs/entropy/oqa": 0.6, "svs/entropy/vps": 1.3, "svs/entropy/spa": 0.7, "actor/entropy": 0.7,
        "svs/oqa/acc_mean": 0.5, "svs/spa/acc_mean": 0.45, "svs/vps/reward_mean": 0.2, "critic/score/mean": 0.33,
        "svs/syntheses": 8, "svs/accepted": 4,
        "val-core/arith/acc/mean@4": 0.5, "val-core/arith/acc/pass@1": 0.5, "val-core/arith/acc/pass@2": 0.7,
        "val-core/arith/acc/pass@4": 0.8},
}
TWIN_STEPS = {   # svs.enable=false: verl's sampling, per-role entropy has only oqa
    0: VAL0,
    **{s: {"svs/entropy/oqa": e, "actor/entropy": e - 0.05, "critic/score/mean": c, "svs/tokens/oqa": 100.0}
       for s, e, c in ((1, 0.9, 0.2), (2, 0.85, 0.25), (3, 0.8, 0.3), (4, 0.75, 0.35))},
}
TWIN_STEPS[4].update({"val-core/arith/acc/mean@4": 0.35, "val-core/arith/acc/pass@1": 0.35,
                      "val-core/arith/acc/pass@2": 0.55, "val-core/arith/acc/pass@4": 0.65})
PLAIN_DAPO_STEPS = {   # verl's own trainer: no svs/*, no pass@k; val-aux / best@ / reward keys must be ignored
    0: {"val-core/arith/acc/mean@4": 0.3, "val-core/arith/acc/best@4/mean": 0.6, "val-core/arith/reward/mean@4": 0.9,
        "val-aux/arith/acc/mean@2": 0.1},
    1: {"actor/entropy": 0.6, "critic/score/mean": 0.1},
    2: {"actor/entropy": 0.4, "critic/score/mean": 0.5, "val-core/arith/acc/mean@4": 0.45},
}


def file_logger_jsonl(path: Path, steps: dict) -> Path:
    """The metrics file written by hand in the layout of verl 0.9.1's FileLogger (verl/utils/tracking.py:
    ``orjson.dumps({"step": step, "data": data})`` per line). Importing verl costs seconds, so the test writes the
    line itself; test_eval.py reads a file from verl's own FileLogger with the same reader."""
    path.write_text("".join(json.dumps({"step": s, "data": d}, separators=(",", ":")) + "\n"
                            for s, d in steps.items()))
    return path


def console_log(path: Path, steps: dict) -> Path:
    """The same metrics as verl's console logger prints them (verl/utils/logger/aggregate_logger.py
    ``concat_dict_to_str``: ``step:N - key:pformat(value) - ...``), with a Ray prefix and other lines between."""
    lines = ["(TaskRunner pid=7) Initial validation metrics: {...}\n"]
    lines += ["(TaskRunner pid=7) " + " - ".join([f"step:{s}"] + [f"{k}:{v!r}" for k, v in d.items()]) + "\n"
              for s, d in steps.items()]
    path.write_text("Training Progress: 0%|\n".join(lines))
    return path


def assert_png(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size, (path, im.size)
    assert 3_000 < path.stat().st_size < 100_000, (path, path.stat().st_size)


def check_svs_arm(arm: dict) -> None:
    """The SvS arm's summary against the rows of SVS_STEPS, worked out by hand."""
    ent = arm["entropy"]
    assert ent["oqa"] == pytest.approx({"first_step": 1, "first": 0.9, "last_step": 4, "last": 0.6, "mean": 0.75,
                                        "points": 4})
    assert ent["vps"]["mean"] == pytest.approx(1.15) and ent["vps"]["last"] == pytest.approx(1.3)
    assert ent["spa"] == pytest.approx({"first_step": 2, "first": 0.5, "last_step": 4, "last": 0.7, "mean": 0.6,
                                        "points": 2})
    assert ent["all"]["mean"] == pytest.approx(0.775)
    acc = arm["accuracy"]
    assert set(acc) == {"oqa", "spa", "vps_reward"}   # critic/score/mean only for a run without these
    assert (acc["oqa"]["first"], acc["oqa"]["last"]) == pytest.approx((0.2, 0.5))
    assert (acc["spa"]["first"], acc["spa"]["last"]) == pytest.approx((0.6, 0.45))
    assert (acc["vps_reward"]["first"], acc["vps_reward"]["last"]) == pytest.approx((0.1, 0.2))
    syn = arm["synthesis"]
    # per step 2/8, 3/6, (step 3 synthesized none: no rate), 4/8
    assert syn["acceptance_mean"] == pytest.approx((0.25 + 0.5 + 0.5) / 3) and syn["steps"] == 3
    assert syn["acceptance_pooled"] == pytest.approx(9 / 22) and (syn["accepted"], syn["synthesized"]) == (9, 22)
    assert syn["reward_mean"] == pytest.approx(0.2)
    val = arm["validation_passk"]
    assert (val["first_step"], val["last_step"]) == (0, 4)
    assert val["last"] == {"arith": pytest.approx({"1": 0.5, "2": 0.7, "4": 0.8})}
    assert arm["max_step"] == 4


def test_svs_and_twin_through_the_installed_command(tmp_path):
    svs = file_logger_jsonl(tmp_path / "svs.jsonl", SVS_STEPS)
    twin = file_logger_jsonl(tmp_path / "twin.jsonl", TWIN_STEPS)
    out = tmp_path / "figs"
    title = "SmolLM2-135M, embedded arithmetic, 4 steps, seed 0"
    proc = subprocess.run([sys.executable, "-m", "svs_verl.cli", "plot", "compare", "--metrics", str(svs), str(twin),
                           "--labels", "SvS", "DAPO", "--title", title, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""   # every figure written, no warning (both step-0 validations agree)
    for name in FIGURES:
        assert str(out / name) in proc.stdout
    assert_png(out / "entropy.png", (700, 450))
    assert_png(out / "accuracy.png", (700, 450))
    for name in ("passk.png", "val.png"):     # one panel: the one data source
        assert_png(out / name, (430, 400))
    assert_png(out / "synthesis.png", (860, 400))
    # the printed table: rows by quantity, a column per arm, the same numbers
    table = proc.stdout[proc.stdout.index("SvS"):]
    assert "entropy oqa first/last/mean  0.900/0.600/0.750  0.900/0.750/0.825" in table
    assert "arith pass@4 base/last       0.500/0.800        0.500/0.650" in table
    assert "acceptance mean (pooled)     0.417 (0.409)      -" in table

    summary = json.loads((out / "summary.json").read_text())
    assert summary["title"] == title and summary["warnings"] == [] and summary["figures"] == FIGURES
    check_svs_arm(summary["arms"]["SvS"])
    twin_arm = summary["arms"]["DAPO"]
    assert set(twin_arm["entropy"]) == {"oqa", "all"}
    assert twin_arm["entropy"]["oqa"]["mean"] == pytest.approx((0.9 + 0.85 + 0.8 + 0.75) / 4)
    assert twin_arm["entropy"]["all"]["mean"] == pytest.approx((0.85 + 0.8 + 0.75 + 0.7) / 4)
    assert twin_arm["accuracy"] == {"batch_score": pytest.approx({"first_step": 1, "first": 0.2, "last_step": 4,
                                                                  "last": 0.35})}
    assert "synthesis" not in twin_arm
    assert twin_arm["validation_passk"]["last"] == {"arith": pytest.approx({"1": 0.35, "2": 0.55, "4": 0.65})}
    assert summary["base"] == {"arm": "SvS", "step": 0, "passk": {"arith": pytest.approx({"1": 0.25, "2": 0.4,
                                                                                         "4": 0.5})}}


def test_console_log_gives_the_same_summary_and_smoothing_leaves_it_raw(tmp_path):
    from svs_verl.evaluation.plot import moving_average

    assert moving_average([1.0, 2.0, 3.0, 4.0, 5.0], 3) == pytest.approx([1.0, 1.5, 2.0, 3.0, 4.0])
    assert moving_average([1.0, 3.0], 1) == [1.0, 3.0]
    log = console_log(tmp_path / "svs_console.log", SVS_STEPS)
    twin = file_logger_jsonl(tmp_path / "twin.jsonl", TWIN_STEPS)
    out = tmp_path / "figs"
    assert main(["plot", "compare", "--metrics", str(log), str(twin), "--smooth", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["smooth"] == 3 and summary["figures"] == FIGURES
    check_svs_arm(summary["arms"]["svs_console.log"])
    # no --title: the file names and the last step
    assert summary["title"] == "svs_console.log vs twin.jsonl, 4 steps"
    for name in FIGURES:
        assert_png(out / name, (860, 400) if name == "synthesis.png" else
                   (700, 450) if name in ("entropy.png", "accuracy.png") else (430, 400))


def test_plain_verl_dapo_run(tmp_path, capsys):
    plain = file_logger_jsonl(tmp_path / "verl_dapo.jsonl", PLAIN_DAPO_STEPS)
    out = tmp_path / "alone"
    assert main(["plot", "compare", "--metrics", str(plain), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "synthesis.png: not written (no svs/syntheses" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["figures"] == ["entropy.png", "accuracy.png", "passk.png", "val.png"]
    arm = summary["arms"]["verl_dapo.jsonl"]
    assert arm["entropy"] == {"all": pytest.approx({"first_step": 1, "first": 0.6, "last_step": 2, "last": 0.4,
                                                    "mean": 0.5, "points": 2})}
    assert arm["accuracy"] == {"batch_score": pytest.approx({"first_step": 1, "first": 0.1, "last_step": 2,
                                                             "last": 0.5})}
    # no pass@k logged: acc/mean@4 is pass@1; best@4/mean, reward/mean@4 and val-aux are not read
    assert summary["base"] == {"arm": "verl_dapo.jsonl", "step": 0, "passk": {"arith": {"1": 0.3}}}
    assert arm["validation_passk"]["last"] == {"arith": {"1": 0.45}}
    assert_png(out / "passk.png", (430, 400))

    # next to an SvS run: its step-0 validation (0.25) is not the plain run's (0.3): a warning
    svs = file_logger_jsonl(tmp_path / "svs.jsonl", SVS_STEPS)
    out = tmp_path / "both"
    assert main(["plot", "compare", "--metrics", str(svs), str(plain), "--labels", "SvS", "verl DAPO",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning: step-0 validation differs between SvS and verl DAPO: arith pass@1 0.25 vs 0.3" in captured.err
    assert "arith pass@2 base/last       0.400/0.700        0.400/-" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base"]["arm"] == "SvS" and len(summary["warnings"]) == 1
    assert summary["figures"] == FIGURES


def test_bad_inputs_name_the_file_or_flag(tmp_path):
    svs = file_logger_jsonl(tmp_path / "svs.jsonl", SVS_STEPS)
    out = tmp_path / "figs"
    with pytest.raises(SystemExit, match=r"--metrics .*missing\.jsonl: no such file"):
        main(["plot", "compare", "--metrics", str(svs), str(tmp_path / "missing.jsonl"), "--out", str(out)])
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    with pytest.raises(SystemExit, match=r"empty\.log: no metrics found"):
        main(["plot", "compare", "--metrics", str(empty), "--out", str(out)])
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"step": 1, "data": {"timing_s/step": 3.0}}) + "\n")
    with pytest.raises(SystemExit, match=r"other\.jsonl: none of the compared metrics .* found: timing_s/step"):
        main(["plot", "compare", "--metrics", str(svs), str(other), "--out", str(out)])
    with pytest.raises(SystemExit, match="--labels: 1 label"):
        main(["plot", "compare", "--metrics", str(svs), str(svs), "--labels", "a", "--out", str(out)])
    with pytest.raises(SystemExit, match="--labels: each arm needs its own label"):
        main(["plot", "compare", "--metrics", str(svs), str(svs), "--labels", "a", "a", "--out", str(out)])
    with pytest.raises(SystemExit, match=r"--out .*svs\.jsonl: exists and is not a directory"):
        main(["plot", "compare", "--metrics", str(svs), "--out", str(svs)])
    assert not out.exists()    # nothing written by a refused run

import json
import shutil
import subprocess
import sys

import pytest

from svs_verl.cli import main


def write(tmp_path, rows):
    f = tmp_path / "s.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f


def test_passk_hand_computed(tmp_path, capsys):
    # p1: 1 of 4 correct; p2: 4 of 4; p3: 0 of 4
    rows = [{"problem_id": "p1", "correct": i == 0} for i in range(4)]
    rows += [{"problem_id": "p2", "correct": True}] * 4 + [{"problem_id": 3, "correct": False}] * 4
    assert main(["passk", "--samples", str(write(tmp_path, rows)), "--k", "1,2,4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_problems"] == 3
    assert out["pass@1"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert out["pass@2"] == pytest.approx((0.5 + 1 + 0) / 3)     # 1 - C(3,2)/C(4,2) = 1/2
    assert out["pass@4"] == pytest.approx((1 + 1 + 0) / 3)


def test_passk_too_few_samples_names_problem_and_k(tmp_path):
    rows = [{"problem_id": "a", "correct": True}] * 4 + [{"problem_id": "short", "correct": True}] * 2
    with pytest.raises(SystemExit, match="'short' has 2 samples, fewer than k=4"):
        main(["passk", "--samples", str(write(tmp_path, rows)), "--k", "1,4"])


def test_passk_bad_lines_are_named(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"problem_id": "a", "correct": true}\n{oops\n')
    with pytest.raises(SystemExit, match="bad.jsonl:2: not valid JSON"):
        main(["passk", "--samples", str(f)])
    f.write_text('{"problem_id": "a", "correct": "yes"}\n')
    with pytest.raises(SystemExit, match=":1: 'correct' must be true or false"):
        main(["passk", "--samples", str(f)])


def test_verify_command(capsys):
    assert main(["verify", "--answer", "1/2", "--response", "so \\boxed{\\dfrac{1}{2}}"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "match"
    assert main(["verify", "--answer", "3", "--response", "\\boxed{4}"]) == 1


def test_console_script_help():
    exe = shutil.which("svs-verl") or f"{sys.executable} -m svs_verl.cli"
    out = subprocess.run(exe.split() + ["--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for sub in ("passk", "verify", "template"):
        assert sub in out.stdout

"""``svs-verl data`` / ``model`` bad inputs: badly encoded lines are rejected rows (by number) and the rest of
the file goes on; an --out that is a file and a path-looking --src that does not exist fail at once, in one
line, writing nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from svs_verl.cli import main
from svs_verl.data import prepare

GOOD = [b'{"problem": "What is 2+2?", "answer": "4"}', b'{"problem": "What is 6*7?", "answer": "42"}']
BAD_UTF8 = b'{"problem": "What is \xff\xfe 1+1?", "answer": "2"}'


def rejected(out: Path, stem: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{stem}.rejected.jsonl").read_text().splitlines()]


def test_jsonl_bad_utf8_line_is_a_rejected_row_and_the_rest_goes_on(tmp_path, capsys):
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join([GOOD[0], BAD_UTF8, GOOD[1]]) + b"\n")
    out = tmp_path / "out"
    assert main(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    assert [r["extra_info"]["source_row"] for r in pq.read_table(out / "math-500.parquet").to_pylist()] == [0, 2]
    [bad] = rejected(out, "math-500")
    assert (bad["row"], bad["line"], bad["kind"]) == (1, 2, "invalid")
    assert bad["reason"] == "not valid UTF-8 (byte 0xff at column 22)"
    assert "bad row 1 (line 2): not valid UTF-8" in capsys.readouterr().out


def test_json_bad_utf8_row_is_rejected_by_number(tmp_path):
    src = tmp_path / "rows.json"
    src.write_bytes(b"[" + b",\n".join([GOOD[0], BAD_UTF8, GOOD[1]]) + b"]")
    out = tmp_path / "out"
    assert main(["data", "prepare", "math-500", "--src", str(src), "--out", str(out)]) == 0
    assert pq.read_table(out / "math-500.parquet").num_rows == 2
    [bad] = rejected(out, "math-500")
    assert bad["row"] == 1 and "not valid UTF-8" in bad["reason"]
    json.dumps(bad)   # the excerpt is printable


def test_dedup_against_a_file_with_a_bad_utf8_line_still_deduplicates(tmp_path, capsys):
    ev = tmp_path / "eval.jsonl"
    ev.write_bytes(b"\n".join([BAD_UTF8, GOOD[0]]) + b"\n")
    src = tmp_path / "train.jsonl"
    src.write_bytes(b"\n".join(GOOD) + b"\n")
    out = tmp_path / "out"
    assert main(["data", "prepare", "math-500", "--src", str(src), "--out", str(out),
                 "--dedup-against", str(ev)]) == 0
    assert pq.read_table(out / "math-500.parquet").num_rows == 1            # 2+2 is in the eval file
    err = capsys.readouterr().err
    assert f"--dedup-against {ev}: skipped 1 unreadable line(s) [1]" in err


@pytest.mark.parametrize("argv", [
    ["data", "prepare", "math-500", "--src", "{src}"],
    ["data", "quickstart"],
    ["model", "smollm2"],
])
def test_out_that_is_an_existing_file_fails_at_once_and_keeps_it(tmp_path, argv, capsys):
    src = tmp_path / "s.jsonl"
    src.write_bytes(GOOD[0] + b"\n")
    out = tmp_path / "taken"
    out.write_text("keep me")
    argv = [a.format(src=src) for a in argv] + ["--out", str(out)]
    with pytest.raises(SystemExit, match=r"--out .*taken: exists and is not a directory"):
        main(argv)
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("src", ["nosuchdir/nosuch", "./nosuch/x", "/nonexistent/dir/data", "a/b/c", "nosuch"])
def test_a_path_looking_src_that_does_not_exist_fails_at_once(tmp_path, src, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prepare, "_read_hub", lambda *a, **k: pytest.fail("asked the hub"))
    t0 = time.time()
    with pytest.raises(SystemExit, match=f"--src {src}: no such file"):
        main(["data", "prepare", "math-500", "--src", src, "--out", str(tmp_path / "out")])
    assert time.time() - t0 < 5
    assert not (tmp_path / "out").exists()


def test_a_hub_id_is_not_asked_for_when_the_hub_is_offline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(prepare, "_read_hub", lambda *a, **k: pytest.fail("asked the hub"))
    with pytest.raises(SystemExit, match=r"--src owner/name: no such file, and the Hugging Face hub cannot be "
                                         r"asked for it \(HF_HUB_OFFLINE is set\)"):
        main(["data", "prepare", "math-500", "--src", "owner/name", "--out", str(tmp_path / "out")])


def test_a_file_in_an_existing_directory_is_a_path(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert prepare._looks_like_path("data/nosuch")
    assert not prepare._looks_like_path("HuggingFaceH4/MATH-500")


def test_an_unreachable_hub_fails_in_seconds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")      # the discard port: nothing listens
    monkeypatch.setattr(prepare, "_read_hub", lambda *a, **k: pytest.fail("asked the hub"))
    t0 = time.time()
    with pytest.raises(SystemExit, match=r"--src owner/name: no such file, and the Hugging Face hub cannot be asked "
                                         r"for it \(127.0.0.1:9 is unreachable"):
        main(["data", "prepare", "math-500", "--src", "owner/name", "--out", str(tmp_path / "out")])
    assert time.time() - t0 < 5

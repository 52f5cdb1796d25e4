"""Remove-padding works on the CPU backend: verl 0.9.1's real FSDP engine (``FSDPEngineWithLMHead`` on gloo,
svs-verl's CPU platform) with ``use_remove_padding=True`` and sdpa attention, on a tiny Llama.

    .venv/bin/python -m pytest tests/test_padding_cpu.py -q

Without flash-attn, verl's remove-padding path packs a micro-batch into one row (``input_ids`` (1, total_nnz),
``attention_mask=None``, position ids restarting at 0 for each sequence); transformers' ``create_causal_mask``
finds the sequence boundaries in the position ids (``find_packed_sequence_indices``) and gives sdpa a
block-diagonal causal mask. So no token attends across sequences and no pad token is computed. Checked here:
log-probs of a packed micro-batch equal those of each sequence run alone and those of verl's padded path; the
gradients of the two paths agree; and packing with position ids that do NOT restart (what a broken boundary
would look like) does change the log-probs, so the comparison can fail. Run in a fresh interpreter
(``VERL_PLATFORM=cpu`` and a gloo process group of one rank).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = r"""
import json, os, socket, sys
sys.path.insert(0, TESTS)
import torch
from pathlib import Path
from tiny_lm import make_tiny_model
path = make_tiny_model(Path(LM))
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
import verl.workers.engine_workers as ew
ew.initialize_global_process_group_ray(timeout_second=60)
import verl.utils.tensordict_utils as tu
from tensordict import TensorDict
from verl.trainer.config import CheckpointConfig
from verl.workers.config import FSDPEngineConfig, FSDPOptimizerConfig, HFModelConfig
from verl.workers.engine.base import EngineRegistry
from verl.workers.engine.utils import prepare_micro_batches

model = HFModelConfig(path=str(path), use_remove_padding=True, override_config={"attn_implementation": "sdpa"})
engine_config = FSDPEngineConfig(strategy="fsdp2", use_dynamic_bsz=True, max_token_len_per_gpu=1024,
                                 infer_max_token_len_per_gpu=1024)
engine = EngineRegistry.get_engine_cls("language_model", "fsdp2")(
    model_config=model, engine_config=engine_config, optimizer_config=FSDPOptimizerConfig(lr=1e-5),
    checkpoint_config=CheckpointConfig())
engine.initialize()
out = {"engine": type(engine).__name__, "attn": engine.module.config._attn_implementation}

torch.manual_seed(0)
lens = [5, 40, 12, 40, 3, 25]          # mixed lengths: short originals next to long synthesis prompts
seqs = [torch.randint(3, 400, (n,)) for n in lens]

def batch(remove_padding, continuous=False):
    starts = [sum(lens[:i]) if continuous else 0 for i in range(len(lens))]
    nested = lambda xs: torch.nested.nested_tensor(xs, layout=torch.jagged)
    td = TensorDict({"input_ids": nested(seqs),
                     "position_ids": nested([torch.arange(n) + s0 for n, s0 in zip(lens, starts)]),
                     "loss_mask": nested([torch.ones(n, dtype=torch.int64) for n in lens])}, batch_size=[len(lens)])
    # a 60-token budget: verl splits the 125 tokens into micro-batches of several sequences each
    tu.assign_non_tensor(td, use_remove_padding=remove_padding, use_dynamic_bsz=True, max_token_len_per_gpu=60,
                         temperature=1.0)
    return td

micro, _ = prepare_micro_batches(batch(False))
out["micro_batch_rows"] = sorted(len(m) for m in micro)
out["flags"] = [tu.get_non_tensor_data(data=m, key="use_remove_padding", default=None) for m in micro]

def log_probs(td):
    with torch.no_grad():
        res = engine.forward_backward_batch(td, loss_function=None, forward_only=True)
    return [t.clone() for t in res["model_output"]["log_probs"].unbind(0)]

engine.eval_mode().__enter__()
packed, padded, leaky = log_probs(batch(True)), log_probs(batch(False)), log_probs(batch(True, continuous=True))
alone = [log_probs(tu.index_select_tensor_dict(batch(True), [k]))[0] for k in range(len(lens))]
# the last position's label wraps to the next sequence (verl drops it with the response mask): compared without it
diff = lambda xs, ys: max(float((x[:-1] - y[:-1]).abs().max()) for x, y in zip(xs, ys))
out.update(packed_vs_alone=diff(packed, alone), packed_vs_padded=diff(packed, padded),
           leaky_vs_alone=diff(leaky, alone))

def loss_fn(model_output, data, dp_group=None):
    return -model_output["log_probs"].values().sum() / 100.0, {}

grads = {}
engine.train_mode().__enter__()
for rp in (True, False):
    engine.optimizer_zero_grad()
    engine.forward_backward_batch(batch(rp), loss_function=loss_fn, forward_only=False)
    grads[rp] = torch.cat([(p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad).flatten().float()
                           for p in engine.module.parameters()])
out.update(grad_diff=float((grads[True] - grads[False]).abs().max()), grad_norm=float(grads[True].norm()),
           autocast=str(engine._autocast_dtype))
print(json.dumps(out))
"""


def test_remove_padding_on_the_cpu_packs_sequences_without_crosstalk(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_PLUGINS"}
    code = f"TESTS = {str(TESTS)!r}\nLM = {str(tmp_path / 'lm')!r}\n" + PROBE
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/",
                         env={**env, "VERL_PLATFORM": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["engine"] == "FSDPEngineWithLMHead" and out["attn"] == "sdpa"
    assert len(out["micro_batch_rows"]) > 1 and max(out["micro_batch_rows"]) > 1   # several sequences per micro-batch
    assert out["flags"] == [False] * len(out["micro_batch_rows"])      # the padded run really took the padded path
    # packed = alone = padded (the model runs under verl's bf16 autocast; same kernels, same numbers)
    assert out["packed_vs_alone"] < 1e-3 and out["packed_vs_padded"] < 1e-3, out
    # position ids that do not restart: sequences see each other and the log-probs move
    assert out["leaky_vs_alone"] > 1e-2, out
    # the update's gradients agree within bf16 rounding
    assert out["grad_diff"] < 1e-2 * out["grad_norm"], out

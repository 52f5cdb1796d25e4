"""Test helper: a tiny Llama causal LM with a real BPE tokenizer and a ChatML chat template, built offline
in about a second (no hub, no files but the ones it writes).

    from tiny_lm import make_tiny_model, tiny_model, tiny_trained_model   # the last two are pytest fixtures

    path = make_tiny_model(tmp_path / "lm")                      # randomly initialised
    path = make_tiny_model(tmp_path / "lm", train_steps=100)     # a few CPU steps on "What is a + b?" chats

``make_tiny_model`` writes a directory that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` (and so ``svs-verl eval --model``) load like a hub checkpoint:

* tokenizer: byte-level BPE (512 tokens) trained in memory on a few hundred lines of arithmetic and English,
  special tokens ``<|endoftext|>`` (pad), ``<|im_start|>`` (bos), ``<|im_end|>`` (eos), and a ChatML chat
  template like SmolLM2's (without its default system message, to keep prompts short);
* model: ``LlamaForCausalLM``, 2 layers, hidden size 64, tied embeddings, float32, seeded (same weights on
  every call with the same ``seed``).

The random model almost never emits ``<|im_end|>``, so its samples run to ``max_tokens``. With
``train_steps`` (100 steps: a few seconds on one core) it learns the chat format and to answer with a number
and stop, so an evaluation sees a mix of finished / truncated and correct / wrong samples.

The fixtures are session-scoped: the model is built once per pytest session.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTION = "What is {a} + {b}? Answer with just the final number."

_WORDS = ("the answer is a number so we add two and three to get five then check the sum again "
          "first second problem solution because therefore equals total each step result value").split()


def arithmetic_question(a: int, b: int) -> str:
    """The prompt text the trained model has seen (``QUESTION`` formatted)."""
    return QUESTION.format(a=a, b=b)


def _corpus(rng: random.Random) -> list[str]:
    lines = []
    for _ in range(300):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        lines.append(f"{arithmetic_question(a, b)} {a} + {b} = {a + b}. The answer is {a + b}.")
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12))).capitalize() + ".")
    return lines


def _tokenizer(rng: random.Random):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=[PAD, BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(_corpus(rng), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _train(model, tok, steps: int, rng: random.Random) -> None:
    """A few AdamW steps on chats "What is a + b? ..." -> "a + b = s. The answer is s." (loss on the reply).
    One thread: tiny matrices gain nothing from more, and a busy machine makes torch's thread pool crawl."""
    import torch

    examples = []
    for a in range(10):
        for b in range(10):
            prompt = tok.apply_chat_template([{"role": "user", "content": arithmetic_question(a, b)}],
                                             add_generation_prompt=True, tokenize=False)
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            r = tok(f"{a} + {b} = {a + b}. The answer is {a + b}.{EOS}", add_special_tokens=False)["input_ids"]
            examples.append((p + r, [-100] * len(p) + r))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            batch = rng.sample(examples, 16)
            width = max(len(ids) for ids, _ in batch)
            x = torch.tensor([ids + [tok.pad_token_id] * (width - len(ids)) for ids, _ in batch])
            y = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            loss = model(input_ids=x, attention_mask=mask, labels=y).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()


def make_tiny_model(path: Path, *, train_steps: int = 0, seed: int = 0) -> Path:
    """Write a tiny Llama checkpoint + tokenizer to ``path`` (created) and return ``path``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tok = _tokenizer(rng)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32).eval()
        if train_steps:
            with torch.enable_grad():
                _train(model, tok, train_steps, rng)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and on a busy 2-core box torch's pool slows it 20x. Autouse in the
    modules that import it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised tiny Llama checkpoint directory (built once per session)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_lm") / "random")


@pytest.fixture(scope="session")
def tiny_trained_model(tmp_path_factory) -> Path:
    """The tiny Llama after 100 CPU steps on one-digit additions: answers "a + b = s. The answer is s."
    in about 12 tokens and stops, right about one time in ten."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_lm") / "trained", train_steps=100)

"""Variational problem synthesis: the prompt (VPS input) and the parser of what the policy writes back.

Paper §3.2 / the reference implementation (MasterVito/SvS): the policy is shown one of its own *correct*
responses to an underperforming problem, in a tagged block, and asked for a *variational* problem: a new
problem with the same reference answer, which that response would most plausibly answer (the reference's
own wording asks to recover the original; the `paper` template asks for a variant, in our words); the
original problem text is not shown. The reference reads
the problem from the first ```` ```text ```` fenced block after the reasoning (an unclosed final fence runs
to the end of the output), else from the first plain ```` ``` ```` fence, else from a
``**Reconstructed Question:**`` line (up to the next blank line).

Templates are plain data so a run can swap them without code:

* YAML or JSON (at most ``MAX_TEMPLATE_BYTES``; YAML aliases refused, so a file cannot expand beyond its
  size; every value type-checked, few-shot entries included): ``user`` holds the request with the placeholder ``{solution}`` (``{answer}`` optional);
  ``system`` and ``few_shot`` are optional; ``fence_open`` / ``fence_close`` delimit the problem in the
  model's output; ``block`` (``first`` | ``last``) says which fenced block counts when there are several;
  ``close`` (``strict`` | ``lenient``) says whether an unclosed fence is refused or runs to the end of the
  output (``close_required: true/false`` is the older spelling of the same switch); ``fallbacks`` lists
  further ``[open, close]`` markers tried in order when ``fence_open`` does not occur.
* any other file (e.g. a copy of the reference's ``prompts/variational_problem_synthesis.txt``, unchanged):
  the whole text is the user message, ``{REPLACE}`` (the reference's placeholder) or ``{solution}`` marks
  where the response goes, and the output is parsed by the reference's rule above.

Built-ins: ``paper`` (default; the reference's structure and parse rule, in our own words), ``oneline``
(few-shot, one ``Question:`` line, for small models), ``problem_fence`` (our earlier rewrite: its own
instructions and a ```` ```problem ```` fence, last block, closing fence required).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

THINK_CLOSE = "</think>"
THINK_OPEN = "<think>"
_PLACEHOLDER = re.compile(r"\{(solution|answer|REPLACE)\}")
BLOCKS = ("first", "last")
CLOSES = ("strict", "lenient")
# The reference implementation's parse rule (after the last </think>): first ```text block, else the first
# plain ``` block, else a "Reconstructed Question" line; an unclosed final fence runs to the end.
REFERENCE_FENCE = ("```text", "```")
REFERENCE_FALLBACKS = (("```", "```"), ("**Reconstructed Question:**", "\n\n"),
                       ("**Reconstructed Question (in natural English):**", "\n\n"))

# Parse rejection reasons (also used as metric names: svs/reject/<reason>).
NOT_TEXT = "not_text"
UNFINISHED_REASONING = "unfinished_reasoning"
NO_FENCE = "no_fence"
UNCLOSED_FENCE = "unclosed_fence"
EMPTY = "empty"
PARSE_REASONS = (NOT_TEXT, UNFINISHED_REASONING, NO_FENCE, UNCLOSED_FENCE, EMPTY)


@dataclass(frozen=True)
class SynthesisTemplate:
    """A synthesis prompt and the output format it asks for."""

    user: str
    fence_open: str
    fence_close: str
    system: str | None = None
    few_shot: tuple[dict[str, str], ...] = field(default_factory=tuple)  # each {solution, answer, problem}
    close_required: bool = True            # False: an unclosed fence runs to the end of the output
    name: str = "custom"
    block: str = "last"                    # which fenced block counts when there are several
    fallbacks: tuple[tuple[str, str], ...] = ()   # further (open, close) markers, tried in order

    def __post_init__(self) -> None:
        for key in ("user", "fence_open", "fence_close", "name", "block"):
            if not isinstance(getattr(self, key), str):
                raise ValueError(f"synthesis template {_short(self.name)}: '{key}' must be a string, "
                                 f"got {type(getattr(self, key)).__name__}")
        if self.system is not None and not isinstance(self.system, str):
            raise ValueError(f"synthesis template {_short(self.name)}: 'system' must be a string, "
                             f"got {type(self.system).__name__}")
        if "{solution}" not in self.user and "{REPLACE}" not in self.user:
            raise ValueError(f"synthesis template {_short(self.name)}: 'user' must contain the placeholder {{solution}} "
                             "(or the reference's {REPLACE})")
        if not self.fence_open:
            raise ValueError(f"synthesis template {_short(self.name)}: 'fence_open' must not be empty")
        if self.close_required and not self.fence_close:
            raise ValueError(f"synthesis template {_short(self.name)}: 'fence_close' is empty but close is strict")
        if self.block not in BLOCKS:
            raise ValueError(f"synthesis template {_short(self.name)}: 'block' must be one of {list(BLOCKS)}, "
                             f"got {_short(self.block)}")
        for pair in self.fallbacks:
            if not isinstance(pair, tuple) or len(pair) != 2 or not all(isinstance(x, str) and x for x in pair):
                raise ValueError(f"synthesis template {_short(self.name)}: each fallback must be [open, close] "
                                 f"strings, got {_short(pair)}")
        for i, shot in enumerate(self.few_shot):
            if not isinstance(shot, dict):
                raise ValueError(f"synthesis template {_short(self.name)}: few_shot[{i}] must be a mapping with "
                                 f"solution, answer and problem, got {type(shot).__name__}")
            missing = {"solution", "problem"} - set(shot)
            if missing:
                raise ValueError(f"synthesis template {_short(self.name)}: few_shot[{i}] lacks {sorted(missing)}")
            unknown = set(shot) - {"solution", "answer", "problem"}
            if unknown:
                raise ValueError(f"synthesis template {_short(self.name)}: few_shot[{i}] has unknown key(s) "
                                 f"{_short(sorted(map(str, unknown)))} (known: solution, answer, problem)")
            for key, value in shot.items():
                if not isinstance(value, str):
                    raise ValueError(f"synthesis template {_short(self.name)}: few_shot[{i}].{key} must be a string"
                                     f" (quote it in YAML: {key}: \"{_short(value, 20)}\"), got {type(value).__name__}")

    @property
    def close(self) -> str:
        return "strict" if self.close_required else "lenient"

    # -- building the prompt -------------------------------------------------------------------------
    def render_user(self, solution: str, answer: str) -> str:
        values = {"solution": solution, "REPLACE": solution, "answer": answer}
        # one pass: text inserted for {solution} is never scanned for placeholders again
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.user)

    def wrap(self, problem: str) -> str:
        """How a problem looks in the fenced output format (used for few-shot answers)."""
        if self.fence_close.strip():
            return f"{self.fence_open}\n{problem}\n{self.fence_close}"
        return f"{self.fence_open} {problem}"  # one-line format: the line end closes it

    def messages(self, solution: str, answer: str) -> list[dict[str, str]]:
        """Chat messages asking the policy for a variational problem; the rollout applies the chat template."""
        msgs: list[dict[str, str]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        for shot in self.few_shot:
            msgs.append({"role": "user", "content": self.render_user(shot["solution"], shot.get("answer", ""))})
            msgs.append({"role": "assistant", "content": self.wrap(shot["problem"])})
        msgs.append({"role": "user", "content": self.render_user(solution, answer)})
        return msgs

    # -- loading -----------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "custom") -> "SynthesisTemplate":
        known = {"user", "fence_open", "fence_close", "system", "few_shot", "close_required", "close", "block",
                 "fallbacks", "name"}
        label = _short(name)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"synthesis template {label}: unknown keys {_short(sorted(map(str, unknown)))} "
                             f"(known: {sorted(known)})")
        for key in ("user", "fence_open"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"synthesis template {label}: key {key!r} must be a string")
        for key in ("fence_close", "system", "name", "block"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise ValueError(f"synthesis template {label}: key {key!r} must be a string, "
                                 f"got {type(data[key]).__name__}")
        close_required = data.get("close_required", True)
        if "close" in data:
            if data["close"] not in CLOSES:
                raise ValueError(f"synthesis template {label}: 'close' must be one of {list(CLOSES)}, "
                                 f"got {_short(data['close'])}")
            if "close_required" in data and close_required != (data["close"] == "strict"):
                raise ValueError(f"synthesis template {label}: 'close' and 'close_required' disagree")
            close_required = data["close"] == "strict"
        if not isinstance(close_required, bool):
            raise ValueError(f"synthesis template {label}: 'close_required' must be true or false, "
                             f"got {_short(close_required)}")
        shots = data.get("few_shot") or ()
        if not isinstance(shots, (list, tuple)):
            raise ValueError(f"synthesis template {label}: few_shot must be a list of {{solution, answer, problem}} "
                             f"entries, got {type(shots).__name__}")
        fallbacks = data.get("fallbacks") or ()
        if not isinstance(fallbacks, (list, tuple)):
            raise ValueError(f"synthesis template {label}: fallbacks must be a list of [open, close] pairs, "
                             f"got {type(fallbacks).__name__}")
        return cls(
            user=data["user"],
            fence_open=data["fence_open"],
            fence_close=data.get("fence_close") or "",
            system=data.get("system"),
            few_shot=tuple(dict(s) if isinstance(s, dict) else s for s in shots),
            close_required=close_required,
            name=str(data.get("name") or name),
            block=data.get("block") or "last",
            fallbacks=tuple(tuple(p) if isinstance(p, (list, tuple)) else p for p in fallbacks),
        )

    @classmethod
    def from_text(cls, text: str, name: str = "custom") -> "SynthesisTemplate":
        """A prompt file in the reference's format: the whole text is the user message (``{REPLACE}`` or
        ``{solution}`` marks the response), parsed by the reference's rule."""
        return cls(user=text, fence_open=REFERENCE_FENCE[0], fence_close=REFERENCE_FENCE[1], close_required=False,
                   name=name, block="first", fallbacks=REFERENCE_FALLBACKS)

    @classmethod
    def load(cls, path_or_name: str | Path) -> "SynthesisTemplate":
        """Load a built-in template by name (``paper``, ``oneline``, ``problem_fence``), a YAML/JSON file, or
        any other file as a plain-text prompt in the reference's format."""
        text, label = _read_template(str(path_or_name))
        suffix = Path(label).suffix.lower()
        if suffix == ".json":
            data = _load_json(text, label)
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(text, label)
        else:
            return cls.from_text(text, name=Path(label).stem)
        if not isinstance(data, dict):
            raise ValueError(f"synthesis template {label}: expected a mapping at top level")
        name = data.get("name")
        name = name if isinstance(name, str) and name else Path(label).stem
        try:
            return cls.from_dict(data, name=name)
        except ValueError as exc:  # name the file, not only the template's own name
            raise ValueError(str(exc).replace(f"synthesis template {_short(name)}:", f"synthesis template {label}:", 1)) \
                from None


def builtin_templates() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("svs_verl.templates").iterdir()
                  if p.name.endswith(".yaml"))


MAX_TEMPLATE_BYTES = 1 << 20  # a template file larger than this is refused unread


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value from a template file, cut to ``limit`` characters: a message never holds a whole file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _load_yaml(text: str, label: str) -> Any:
    """YAML without aliases: a template needs none, and ``&a [*b, *b, ...]`` chains expand a few hundred
    bytes into gigabytes (an alias bomb). Safe tags only; nesting beyond the parser's recursion is an error."""
    import yaml  # PyYAML ships with hydra/omegaconf

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[override]
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ValueError(f"synthesis template {label}: line {event.start_mark.line + 1}: YAML aliases "
                                 f"(*{str(event.anchor)[:30]}) are not allowed in a template; write the text out")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ValueError(f"synthesis template {label}: nested too deeply") from None


def _load_json(text: str, label: str) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(f"synthesis template {label}: {name} is not a JSON value")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ValueError(f"synthesis template {label}: nested too deeply") from None


def _read_template(spec: str) -> tuple[str, str]:
    path = Path(spec).expanduser()
    if path.is_file():
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise ValueError(f"synthesis template {path}: {size} bytes, over the {MAX_TEMPLATE_BYTES} a template "
                             f"may have")
        return path.read_text(encoding="utf-8"), str(path)
    if spec in builtin_templates():
        res = resources.files("svs_verl.templates").joinpath(f"{spec}.yaml")
        return res.read_text(encoding="utf-8"), f"{spec}.yaml"
    raise FileNotFoundError(
        f"synthesis template {_short(spec)}: no such file, and not a built-in template "
        f"({', '.join(builtin_templates())})")


def final_part(text: str) -> str:
    """The text after the last ``</think>`` (the whole text when the model does not reason in tags)."""
    cut = text.rfind(THINK_CLOSE)
    return text if cut < 0 else text[cut + len(THINK_CLOSE):]


@dataclass(frozen=True)
class ParseResult:
    problem: str | None
    reason: str  # "ok" or one of PARSE_REASONS

    @property
    def ok(self) -> bool:
        return self.problem is not None


def parse_synthesis(text: object, template: SynthesisTemplate) -> ParseResult:
    """Extract the variational problem from one synthesis output.

    Pure function of its arguments: it keeps no state between calls, so a failed parse can never fall
    back on an earlier output (the reference implementation's stale-variable defect). The problem it
    returns is always a substring of ``text``. Only the text after the last ``</think>`` is read; the
    template's ``fence_open`` is looked for first, then each of its ``fallbacks``; ``block`` picks the
    first or last occurrence; with ``close_required`` false an unclosed fence runs to the end.
    """
    if not isinstance(text, str):
        return ParseResult(None, NOT_TEXT)
    if THINK_CLOSE in text:
        text = final_part(text)
    elif THINK_OPEN in text:
        return ParseResult(None, UNFINISHED_REASONING)
    for opener, closer in ((template.fence_open, template.fence_close), *template.fallbacks):
        start = text.find(opener) if template.block == "first" else text.rfind(opener)
        if start < 0:
            continue
        body_start = start + len(opener)
        while body_start < len(text) and text[body_start] in " \t\r\n":
            body_start += 1
        end = text.find(closer, body_start) if closer else -1
        if end < 0:
            if template.close_required:
                return ParseResult(None, UNCLOSED_FENCE)
            end = len(text)
        problem = text[body_start:end].strip()
        if not problem:
            return ParseResult(None, EMPTY)
        return ParseResult(problem, "ok")
    return ParseResult(None, NO_FENCE)

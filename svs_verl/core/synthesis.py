"""Variational problem synthesis: the prompt (VPS input) and the parser of what the policy writes back.

Paper §3.2: the policy is shown one of its own *correct* solutions to an underperforming problem and is
asked for a new problem that this solution answers, with the same final answer, a different surface or
structure, and an explicit, unambiguous statement. As in the reference implementation, the original
problem text is not shown. The answer must come back inside a fixed fence so that parsing is exact.

Templates are plain data (YAML or JSON) so a run can swap them without code: ``user`` holds the request
with the placeholders ``{solution}`` and ``{answer}``; ``system`` and ``few_shot`` are optional;
``fence_open`` / ``fence_close`` delimit the problem in the model's output. A template whose
``close_required`` is false accepts the end of the output as the closing fence (one-line formats such as
``Question: ...`` for small models).
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
_PLACEHOLDER = re.compile(r"\{(solution|answer)\}")

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
    close_required: bool = True
    name: str = "custom"

    def __post_init__(self) -> None:
        if "{solution}" not in self.user:
            raise ValueError(f"synthesis template {self.name!r}: 'user' must contain the placeholder {{solution}}")
        if not self.fence_open:
            raise ValueError(f"synthesis template {self.name!r}: 'fence_open' must not be empty")
        if self.close_required and not self.fence_close:
            raise ValueError(f"synthesis template {self.name!r}: 'fence_close' is empty but close_required is true")
        for i, shot in enumerate(self.few_shot):
            missing = {"solution", "problem"} - set(shot)
            if missing:
                raise ValueError(f"synthesis template {self.name!r}: few_shot[{i}] lacks {sorted(missing)}")

    # -- building the prompt -------------------------------------------------------------------------
    def render_user(self, solution: str, answer: str) -> str:
        values = {"solution": solution, "answer": answer}
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
        known = {"user", "fence_open", "fence_close", "system", "few_shot", "close_required", "name"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"synthesis template {name!r}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        for key in ("user", "fence_open"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"synthesis template {name!r}: key {key!r} must be a string")
        return cls(
            user=data["user"],
            fence_open=data["fence_open"],
            fence_close=data.get("fence_close") or "",
            system=data.get("system"),
            few_shot=tuple(dict(s) for s in data.get("few_shot") or ()),
            close_required=bool(data.get("close_required", True)),
            name=str(data.get("name", name)),
        )

    @classmethod
    def load(cls, path_or_name: str | Path) -> "SynthesisTemplate":
        """Load a template from a YAML/JSON file, or a built-in one by name (``paper``, ``oneline``)."""
        text, label = _read_template(str(path_or_name))
        if label.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml  # PyYAML ships with hydra/omegaconf

            data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"synthesis template {label}: expected a mapping at top level")
        return cls.from_dict(data, name=data.get("name", Path(label).stem))


def builtin_templates() -> list[str]:
    return sorted(p.name[: -len(".yaml")] for p in resources.files("svs_verl.templates").iterdir()
                  if p.name.endswith(".yaml"))


def _read_template(spec: str) -> tuple[str, str]:
    path = Path(spec).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8"), str(path)
    if spec in builtin_templates():
        res = resources.files("svs_verl.templates").joinpath(f"{spec}.yaml")
        return res.read_text(encoding="utf-8"), f"{spec}.yaml"
    raise FileNotFoundError(
        f"synthesis template {spec!r}: no such file, and not a built-in template ({', '.join(builtin_templates())})")


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
    returns is always a substring of ``text``.
    """
    if not isinstance(text, str):
        return ParseResult(None, NOT_TEXT)
    if THINK_CLOSE in text:
        text = final_part(text)
    elif THINK_OPEN in text:
        return ParseResult(None, UNFINISHED_REASONING)
    start = text.rfind(template.fence_open)
    if start < 0:
        return ParseResult(None, NO_FENCE)
    body_start = start + len(template.fence_open)
    end = text.find(template.fence_close, body_start) if template.fence_close else -1
    if end < 0:
        if template.close_required:
            return ParseResult(None, UNCLOSED_FENCE)
        end = len(text)
    problem = text[body_start:end].strip()
    if not problem:
        return ParseResult(None, EMPTY)
    return ParseResult(problem, "ok")

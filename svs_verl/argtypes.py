"""argparse value types shared by the ``svs-verl`` subcommands (an error names the bad value)."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Callable


def short(value: object, limit: int = 60) -> str:
    """``repr`` of a user-given value cut to ``limit`` characters, for messages (never a whole file or argument)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {short(text)}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def float_in(low: float, high: float = math.inf, *, low_open: bool = False, what: str = "a number") -> Callable[[str], float]:
    """An argparse ``type`` for finite floats in [low, high] (``low_open``: (low, high]); nan is refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not ok:
            bound = f"> {low}" if low_open else f">= {low}"
            if high != math.inf:
                bound += f" and <= {high}"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {short(text)}")
        return value

    parse.__name__ = what
    return parse


# ------------------------------------------------------------------------------------- synthesis templates
PLACEHOLDERS = ("solution", "answer", "REPLACE")   # {REPLACE}: the reference's plain-text prompt files
# "{name}" not right after a letter, digit, backslash or brace: LaTeX such as \boxed{x} or x^{2} is no placeholder
_PLACEHOLDER_LIKE = re.compile(r"(?<![\w\\}^_$])\{([A-Za-z_]\w*)\}")


def unknown_placeholders(text: str | None) -> list[str]:
    """Names written like a placeholder (``{other}``) that the template engine does not fill in."""
    if not isinstance(text, str):
        return []
    return sorted({m.group(1) for m in _PLACEHOLDER_LIKE.finditer(text)} - set(PLACEHOLDERS))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and getattr(exc, "filename", None) is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text or type(exc).__name__


def load_template(spec: str):
    """``SynthesisTemplate.load(spec)`` with every failure as one ``ValueError`` line naming the template:
    no such file, over ``MAX_TEMPLATE_BYTES``, bad UTF-8, invalid YAML/JSON, a YAML alias (an alias bomb
    expands a few hundred bytes into gigabytes), a list at top level, unknown keys, a missing
    ``{solution}``, an empty fence, a few-shot entry without its problem, not a mapping or with a non-string
    value, an unknown placeholder like ``{other}``."""
    from .core.synthesis import MAX_TEMPLATE_BYTES, SynthesisTemplate

    path = Path(str(spec)).expanduser()
    label = str(spec) if len(str(spec)) <= 200 else str(spec)[:200] + "..."  # shown in messages
    if path.is_dir():
        raise ValueError(f"synthesis template {label}: is a directory, not a YAML/JSON file")
    if path.is_file():
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise ValueError(f"synthesis template {label}: {path.stat().st_size} bytes, over the "
                             f"{MAX_TEMPLATE_BYTES} a template may have")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"synthesis template {label}: not valid UTF-8 (byte at position {exc.start})") from None
        if not text.strip():
            raise ValueError(f"synthesis template {label}: the file is empty")
    elif path.suffix.lower() in (".yaml", ".yml", ".json") or "/" in label:
        raise ValueError(f"synthesis template {label}: no such file")
    try:
        template = SynthesisTemplate.load(str(spec))
    except Exception as exc:  # OSError, ValueError (JSON, types, aliases), yaml.YAMLError
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        message = _one_line(exc)[:500]
        if label not in message and str(path) not in message:
            message = f"synthesis template {label}: {message}"
        raise ValueError(message) from None
    bad = unknown_placeholders(template.user) + unknown_placeholders(template.system)
    if bad:
        raise ValueError(f"synthesis template {label}: unknown placeholder(s) "
                         f"{', '.join('{' + b + '}' for b in sorted(set(bad)))} in 'user'/'system' (known: "
                         f"{{solution}}, {{answer}}, {{REPLACE}})")
    for i, shot in enumerate(template.few_shot):
        for key in ("solution", "problem"):
            if not isinstance(shot.get(key), str) or not shot[key].strip():
                raise ValueError(f"synthesis template {label}: few_shot[{i}].{key} must be a non-empty string")
    return template


def template_spec(text: str) -> str:
    """An argparse ``type``: a built-in template name or a YAML/JSON file that loads (see ``load_template``)."""
    try:
        load_template(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text

"""The fast rule path of the hybrid verifier: answer extraction and normalisation, no sympy.

Everything here is linear in the input length (no nested quantifiers, no recursion), so it runs inline in
the caller's thread. ``compare`` returns True/False when the rules settle a pair and None when only a
symbolic check (math-verify, in a worker process) can.
"""

from __future__ import annotations

import re
from fractions import Fraction

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_ANSWER_CHARS = 2000  # an extracted answer longer than this is not an answer


def _closing_braces(text: str) -> dict[int, int]:
    """Position of each ``{`` -> position of its matching ``}`` (one linear pass)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            match[stack.pop()] = i
    return match


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces included."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    opens = sorted(m.end() - 1 for cmd in BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"\s*\{", text))
    if opens:
        match = _closing_braces(text)
        for pos in reversed(opens):
            if pos in match:
                return text[pos + 1:match[pos]]
    # "\\boxed 5" (no braces) is valid LaTeX for one token
    m = None
    for m in re.finditer(r"\\boxed\s+([^\s$]+)", text):
        pass
    return m.group(1) if m else None


_ANSWER_LEAD = re.compile(r"\b(?:final\s+answer|answer)\b\s*(?:is\s*:?|:)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def answer_line(text: str) -> str | None:
    """The answer of the last ``Answer: x`` / ``The final answer is x`` line (linear time: no backtracking
    over the answer text, whatever runs of spaces it holds)."""
    lower = text.lower()
    end = len(text)
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        if "answer" in lower[start:end]:
            found = None
            for found in _ANSWER_LEAD.finditer(text, start, end):
                pass
            if found:
                ans = text[found.end():end].strip()
                if ans:
                    boxed = last_boxed(ans)
                    return boxed if boxed is not None else ans.rstrip(".").strip()
        end = start - 1
    return None


def last_number(text: str) -> str | None:
    found = None
    for found in _NUMBER.finditer(text):
        pass
    return found.group(0) if found else None


def final_segment(text: str) -> str:
    cut = text.rfind("</think>")
    return text if cut < 0 else text[cut + len("</think>"):]


def extract(text: str, mode: str = "auto") -> str | None:
    """The model's final answer, or None. Modes: ``auto`` (boxed, then an Answer line), ``boxed``,
    ``last_number`` (lenient, for small models: the last number in the output)."""
    text = final_segment(text)
    if mode == "last_number":
        return last_number(text)
    found = last_boxed(text)
    if found is None and mode == "auto":
        found = answer_line(text)
    if mode not in ("auto", "boxed"):
        raise ValueError(f"unknown answer extraction mode {mode!r} (auto, boxed, last_number)")
    return found


# -- normalisation ----------------------------------------------------------------------------------
_DROP = [r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\ ", "~", "$", r"\displaystyle"]
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
# units dropped after a number ("5 cm", "12 apples"); variables and constants ("2 x", "3 pi", "2 i") are not units
UNITS = frozenset("""
    mm cm dm km meter meters metre metres centimeter centimeters kilometer kilometers inch inches ft feet foot
    yard yards mile miles mg kg gram grams kilogram kilograms lb lbs pound pounds oz ounce ounces ml liter liters
    litre litres gallon gallons sec secs second seconds min mins minute minutes hr hrs hour hours day days week weeks
    month months year years mph kph dollar dollars cent cents euro euros unit units degree degrees deg percent
    people persons students apples books cookies marbles eggs cars coins points ways times
""".split())
_UNIT_TAIL = re.compile(r"(?<=[\d}])\s+([a-zA-Z]{2,12})(?:\^?\d)?\.?$")
_ASSIGN = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?=[^=])")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize(ans: str) -> str:
    s = ans.strip()
    for tok in _DROP:
        s = s.replace(tok, "")
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _DEGREE.sub("", s)
    s = s.replace(r"\%", "").replace("%", "")
    s = s.strip().rstrip(".").strip()
    s = _ASSIGN.sub("", s)
    unit = _UNIT_TAIL.search(s)
    if unit and unit.group(1).lower() in UNITS and re.fullmatch(r"-?[\d.,]+", s[:unit.start()].strip()):
        s = s[:unit.start()]
    s = s.strip()
    if _THOUSANDS.match(s):  # before spaces go: "1, 234" is a pair, "1,234" a number
        s = s.replace(",", "")
    return re.sub(r"\s+", "", s)


_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}$|^(-?)\\frac(\d)(\d)$")
_SLASH = re.compile(r"^(-?\d+)/(-?\d+)$")
_DECIMAL = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")


def as_number(s: str) -> Fraction | None:
    """Exact value of an integer, decimal, ``a/b`` or ``\\frac{a}{b}`` (already normalised), else None."""
    if len(s) > 100:
        return None
    try:
        if _DECIMAL.match(s):
            return Fraction(s)
        m = _SLASH.match(s)
        if m:
            return Fraction(int(m.group(1)), int(m.group(2)))
        m = _FRAC.match(s)
        if m:
            if m.group(2) is not None:
                value = Fraction(int(m.group(2)), int(m.group(3)))
                return -value if m.group(1) else value
            value = Fraction(int(m.group(5)), int(m.group(6)))
            return -value if m.group(4) else value
    except (ZeroDivisionError, ValueError):
        return None
    return None


_INF = {"\\infty": "inf", "+\\infty": "inf", "-\\infty": "-inf", "\\inf": "inf", "-\\inf": "-inf"}
_OPEN, _CLOSE = "([{", ")]}"


def _split_top(s: str) -> list[str] | None:
    """Split on commas outside any bracket; None when brackets do not balance."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]] if depth == 0 else None


def _scalar(s: str) -> Fraction | str | None:
    return _INF.get(s) or as_number(s)


def _elements(body: str) -> list | None:
    parts = _split_top(body)
    if parts is None or len(parts) < 2:
        return None
    values = [_scalar(p) for p in parts]
    return None if any(v is None for v in values) else values


def _structured(s: str) -> tuple[str, object] | None:
    """Intervals / tuples ``(a,b]`` (ordered, brackets kept) and sets ``\\{a,b\\}`` of plain numbers."""
    if s.startswith("\\{") and s.endswith("\\}"):
        values = _elements(s[2:-2])
        return None if values is None else ("set", sorted(set(map(str, values))))
    if len(s) >= 5 and s[0] in "([" and s[-1] in ")]":
        values = _elements(s[1:-1])
        return None if values is None else ("seq", (s[0], tuple(values), s[-1]))
    return None


_TERM = re.compile(r"([+-]?)([^+-]+)")


def _complex(s: str) -> tuple[Fraction, Fraction] | None:
    """``a+bi`` in any term order (``bi+a``, ``-i``, ``3i``) as exact (re, im); None for anything else."""
    if "i" not in s or len(s) > 100 or not re.fullmatch(r"[\d.+\-/i]+", s):
        return None
    re_part, im_part, pos = Fraction(0), Fraction(0), 0
    for m in _TERM.finditer(s):
        if m.start() != pos:
            return None
        pos = m.end()
        sign = -1 if m.group(1) == "-" else 1
        term = m.group(2)
        if term.endswith("i"):
            coef = term[:-1]
            value = Fraction(1) if coef == "" else as_number(coef)
            if value is None:
                return None
            im_part += sign * value
        else:
            value = as_number(term)
            if value is None:
                return None
            re_part += sign * value
    return (re_part, im_part) if pos == len(s) else None


def compare(candidate: str, gold: str) -> bool | None:
    """True/False when the rules settle it; None when a symbolic check is needed."""
    a, b = normalize(candidate), normalize(gold)
    if a == b and a:
        return True
    na, nb = as_number(a), as_number(b)
    if na is not None and nb is not None:
        return na == nb
    sa, sb = _structured(a), _structured(b)
    if sa is not None and sb is not None:
        return sa == sb
    if "i" in b:
        ca, cb = _complex(a), _complex(b)
        if ca is not None and cb is not None:
            return ca == cb
    return None

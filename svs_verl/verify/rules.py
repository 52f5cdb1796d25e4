"""The fast rule path of the hybrid verifier: answer extraction and normalisation, no sympy.

Everything here is linear in the input length: no regular expression can split the same text two ways
(so a failed match never backtracks more than once over it), no recursion, nested boxes are unwrapped by
index moves; ``benchmarks/verify_adversarial.py`` times every rule against input size on adversarial
families. Answers longer than ``MAX_ANSWER_CHARS`` are refused before they are normalised. ``compare``
returns True/False when the rules settle a pair and None when only a symbolic check (math-verify, in a
worker process) can. ``svs_verl.verify`` runs this path inline for pairs up to ``INLINE_CHARS`` and in a
worker process, under the per-item deadline, for longer ones.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from fractions import Fraction

from ..core.guards import BOX_COMMANDS, closing_braces
from ..core.guards import bare_answer as unwrap  # noqa: F401  (the answer without $..$ / \\boxed{..} around it)

MAX_ANSWER_CHARS = 2000  # an extracted answer longer than this is not an answer


def _box_spans(text: str) -> tuple[list[tuple[int, int, str]], bool]:
    """Outermost complete ``\\boxed{...}`` / ``\\fbox{...}`` as (start, end, content), in order, and whether
    the last box opened in ``text`` is never closed (a truncated response)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return [], False
    opens = sorted((m.start(), m.end() - 1) for cmd in BOX_COMMANDS for m in re.finditer(re.escape(cmd) + r"\s*\{", text))
    spans: list[tuple[int, int, str]] = []
    unclosed_after = -1
    if opens:
        match = closing_braces(text)
        for start, pos in opens:
            if pos not in match:
                unclosed_after = start
                continue
            if spans and start < spans[-1][1]:
                continue  # nested inside the previous box
            spans.append((start, match[pos] + 1, text[pos + 1:match[pos]]))
    if not spans:  # "\\boxed 5" (no braces) is valid LaTeX for one token
        for m in re.finditer(r"\\boxed\s+([^\s${}]+)", text):
            spans.append((m.start(), m.end(), m.group(1)))
    truncated = unclosed_after >= 0 and (not spans or unclosed_after > spans[-1][0])
    return spans, truncated


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces included."""
    spans, _ = _box_spans(text)
    return spans[-1][2] if spans else None


def all_boxed(text: str) -> list[str]:
    """Contents of every outermost complete box, in order."""
    return [c for _, _, c in _box_spans(text)[0]]


_ANSWER_LEAD = re.compile(r"\b(?:final\s+answer|answer)\b\s*(?:is\s*:?|:)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
# a sentence ends at . ! ? followed by a space or the end (a decimal point is followed by a digit)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_COPULA = re.compile(r"\b(?:is|are|equals|was|be)\b|(?<![<>!=])=(?!=)", re.IGNORECASE)


def _inside(regions: list[tuple[int, int, str, bool]], pos: int) -> bool:
    """Whether ``pos`` lies in one of the (sorted, disjoint) regions: a binary search, not a scan."""
    i = bisect_right(regions, pos, key=lambda r: r[0]) - 1
    return i >= 0 and regions[i][0] <= pos < regions[i][1]


def _stated_value(sentence: str) -> str:
    """The math or number a sentence states: "The largest $n$ is 34." -> "34",
    "$12,000$. I hope it is correct." -> "12,000". Math spans are read whole."""
    regions = math_regions(sentence)
    # cut at the first sentence end outside math
    cut = len(sentence)
    for m in _SENTENCE_END.finditer(sentence):
        if not _inside(regions, m.start()):
            cut = m.start()
            break
    s = sentence[:cut]
    regions = [r for r in regions if r[1] <= cut]
    if not regions and not _WORD.search(_strip_commands(s)):
        return s.strip()  # the whole sentence is math
    # after the last copula outside math ("... is 34", "... = 5")
    last = None
    for m in _COPULA.finditer(s):
        if not _inside(regions, m.start()):
            last = m
    if last is not None:
        s_tail = s[last.end():]
        if s_tail.strip():
            inner = math_regions(s_tail)
            if inner and not _WORD.search(_strip_commands(_outside(s_tail, inner))):
                return " ".join(c for _, _, c, ok in inner if ok).strip()
            if not inner and not _WORD.search(_strip_commands(s_tail)):
                return s_tail.strip()
            s, regions = s_tail, inner
    if regions:
        valid = [c for _, _, c, ok in regions if ok]
        if valid and not _WORD.search(_strip_commands(_outside(s, regions))):
            return " ".join(valid)
    found = None
    for found in _NUMBER.finditer(s):
        pass
    if regions and regions[-1][3] and (found is None or regions[-1][1] > found.end()):
        return regions[-1][2]
    return found.group(0) if found else s.strip()


def _answer_line_span(text: str) -> tuple[str, int] | None:
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
                    if boxed is not None:
                        return boxed, found.start()
                    value = _stated_value(ans.strip("*").strip()).strip().strip("*").strip()  # "**Answer:** 5"
                    return value.rstrip(".,;:!").strip() or ans, found.start()
        end = start - 1
    return None


def answer_line(text: str) -> str | None:
    """The answer of the last ``Answer: x`` / ``The final answer is x`` line: its box, else the math or the
    number the sentence states, not the sentence (linear time)."""
    found = _answer_line_span(text)
    return found[0] if found else None


def last_number(text: str) -> str | None:
    found = None
    for found in _NUMBER.finditer(text):
        pass
    return found.group(0) if found else None


_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z_]{1,30}\|>")


def final_segment(text: str) -> str:
    """The text after ``</think>``, up to the first chat-template token (``<|im_start|>``, ``<|endoftext|>``)."""
    cut = text.rfind("</think>")
    text = text if cut < 0 else text[cut + len("</think>"):]
    special = _SPECIAL_TOKEN.search(text)
    return text if special is None else text[:special.start()]


# -- reading a response with neither a box nor an answer line ---------------------------------------
_MATH_OPEN = re.compile(r"(?<!\\)(?:\$\$|\$)|\\\(|\\\[")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_COMMAND = re.compile(r"\\[a-zA-Z]+")


def math_regions(text: str) -> list[tuple[int, int, str, bool]]:
    """``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]`` as (start, end, content, valid), one linear scan.
    Inline math (``$``, ``\\(``) may not span lines: such a region is returned as not valid."""
    out: list[tuple[int, int, str, bool]] = []
    pos = 0
    while True:
        m = _MATH_OPEN.search(text, pos)
        if not m:
            return out
        opener = m.group(0)
        close = text.find(_CLOSER[opener], m.end())
        while close > 0 and opener[0] == "$" and text[close - 1] == "\\":  # "\\$" is a dollar sign
            close = text.find(_CLOSER[opener], close + 1)
        if close < 0:
            return out
        content = text[m.end():close]
        inline = opener in ("$", "\\(")
        out.append((m.start(), close + len(_CLOSER[opener]), content.strip(), not (inline and "\n" in content)))
        pos = close + len(_CLOSER[opener])


def _outside(text: str, regions) -> str:
    parts, pos = [], 0
    for a, b, _, _ in regions:
        parts.append(text[pos:a])
        pos = b
    parts.append(text[pos:])
    return " ".join(parts)


def _strip_commands(s: str) -> str:
    return _COMMAND.sub(" ", s)


_NUMERAL = r"\d+(?:[.,]\d+)*"
_COMPUTATION = re.compile(rf"[-+]?{_NUMERAL}(?:(?:[-+*×÷x]|\\cdot|\\times|\\div)[-+]?{_NUMERAL})+")


def is_computation(expr: str) -> bool:
    """An arithmetic expression of literal numbers still to be computed ("55 + 56", "3 \\times 4"): a
    restated question, not an answer. A single ``a/b`` is a fraction, not a computation."""
    s = re.sub(r"\s+", "", expr)
    return bool(_COMPUTATION.fullmatch(s)) and not re.fullmatch(r"-?\d+/\d+", s)


_PROSE_NUMBER = re.compile(r"(?<![A-Za-z\d.])-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?(?![A-Za-z]*\d)")
_OPERATOR_BEFORE = re.compile(r"(?:[-+*×÷/^]|\\cdot|\\times|\\div)\s*$")
_OPERATOR_AFTER = re.compile(r"^\s*(?:[+*×÷/^]|-\s*\d|\\cdot|\\times|\\div)")


def bare_reading(text: str) -> str | None:
    """What ``auto`` reads off a response with neither a box nor an answer line: the last value it
    *states* -- the last (valid, trailing-punctuation-free) math span or the last number of its prose,
    whichever comes later; a response that is nothing but math is read whole. An arithmetic expression
    of literals ("compute 55 + 56") or an operand of one is only mentioned, never an answer: None."""
    regions = math_regions(text)
    prose = _outside(text, regions) if regions else text
    lines = [ln for ln in prose.strip().splitlines() if ln.strip()]
    if not regions and len(lines) == 1 and not _WORD.search(_strip_commands(lines[0])):
        cand = lines[0].strip().rstrip(".,;:!").strip()  # the whole response is one line of math
        return None if not cand or is_computation(cand) else cand
    # the last number of the prose, with its position in ``text``
    number, num_end = None, -1
    pos = 0
    for a, b, _, _ in [*regions, (len(text), len(text), "", True)]:
        for m in _PROSE_NUMBER.finditer(text, pos, a):
            number, num_end, num_start = m.group(0).rstrip(","), m.end(), m.start()
        pos = b
    last_region = next((r for r in reversed(regions) if r[3]), None)
    if last_region is not None and last_region[1] > num_end:
        if any(not ok and a > last_region[0] for a, _, _, ok in regions):
            return None  # the last math the response wrote is malformed (spans lines)
        cand = last_region[2].strip().rstrip(".,;:!").strip()
        return None if not cand or is_computation(cand) else cand
    if number is None:
        return None
    if any(not ok and a > num_end for a, _, _, ok in regions):
        return None
    if _OPERATOR_BEFORE.search(text[max(0, num_start - 12):num_start]) and not number.startswith("-"):
        return None
    if _OPERATOR_AFTER.search(text[num_end:num_end + 12]):
        return None
    tail = text[num_end:num_end + 12]
    if re.match(r"\s*(?:\\?%|percent\b|pct\b)", tail):
        number += "%"
    return number


def read(text: str, mode: str = "auto") -> tuple[str, list[str]]:
    """``(status, answers)``: status ``ok`` with one answer or several (several boxes), ``none`` or
    ``truncated`` (a box opened and never closed after the last complete one: an unfinished answer)."""
    if mode not in ("auto", "boxed", "last_number"):
        raise ValueError(f"unknown answer extraction mode {mode!r} (auto, boxed, last_number)")
    text = final_segment(text)
    if mode == "last_number":
        found = last_number(text)
        return ("ok", [found]) if found else ("none", [])
    spans, truncated = _box_spans(text)
    if truncated:
        return "truncated", []
    if mode == "boxed":
        return ("ok", [spans[-1][2]]) if spans else ("none", [])
    line = _answer_line_span(text[spans[-1][1]:] if spans else text)
    if line is not None:
        return "ok", [line[0]]  # an answer line after the last box gives the result
    if spans:
        contents = list(dict.fromkeys(c.strip() for _, _, c in spans if c.strip()))
        return ("ok", contents) if contents else ("none", [])
    found = bare_reading(text)
    return ("ok", [found]) if found else ("none", [])


def extract(text: str, mode: str = "auto") -> str | None:
    """The model's final answer (the last one when it boxed several), or None. Modes: ``auto`` (boxes,
    then an Answer line, then the last stated value), ``boxed``, ``last_number`` (lenient, for small
    models: the last number in the output)."""
    status, found = read(text, mode)
    return found[-1] if status == "ok" and found else None


# unambiguous (each alternative starts differently; inside \text{..} the spaces split one way only), so a
# failed fullmatch backtracks in linear time: "\s*(?:and|or|,)?\s*" let k groups of spaces split ~n^k ways
_BOX_SEPARATOR = re.compile(r"(?:[\s,;.$]|\\[()\[\]]|\\q?quad|\\text\{\s*(?:(?:and|or|,)\s*)?\}|\band\b|\bor\b)*")


def reference(gold: str) -> str:
    """A reference answer written as a solution is read like a response. Boxes joined only by
    separators ("\\boxed{1}, \\boxed{2} and \\boxed{3}") are the parts of a set; boxes with other text
    between them are successive answers: the last one counts. Without a box, an ``Answer:`` line."""
    spans, _ = _box_spans(gold)
    if not spans:
        if "answer" in gold.lower() and len(gold) > 40:
            line = _answer_line_span(gold)
            if line is not None:
                return line[0]
        return gold
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        if not _BOX_SEPARATOR.fullmatch(gold[span[1]:group[0][0]]):
            break
        group.insert(0, span)
    contents = list(dict.fromkeys(c.strip() for _, _, c in group if c.strip()))
    if not contents:
        return gold
    return contents[0] if len(contents) == 1 else "\\{" + ", ".join(contents) + "\\}"


# -- normalisation ----------------------------------------------------------------------------------
_DROP = ["\\$", r"\left", r"\right", r"\!", r"\,", r"\;", r"\:", r"\ ", "~", "$", r"\displaystyle"]
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_DEGREE = re.compile(r"\^\s*(?:\{\s*\\circ\s*\}|\\circ)|°")  # not "\s*\{?\s*": spaces split two ways
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
# thousands grouping: 1-3 digits (not a lone 0) then groups of three; "0,111" or "1000,99" is a decimal comma
_THOUSANDS = re.compile(r"^-?(?:[1-9]\d{0,2})(?:,\d{3})+(?:\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")
_SPACED_COMMA = re.compile(r",\s")  # "1, 5" is a list, never a decimal comma
_MIXED = re.compile(r"^(-?)(\d+)(?:\s+(\d+)/(\d+)|\s*\\frac\{(\d+)\}\{(\d+)\})$")
_MATRIX = re.compile(r"^\(?\\begin\{([pbvB]?matrix)\}(.*)\\end\{\1\}\)?$")


def _mixed(s: str) -> str | None:
    """"4 4/9" or "4\\frac{4}{9}" (a whole number and a proper fraction) as the improper fraction "40/9"."""
    m = _MIXED.match(s)
    if not m:
        return None
    num, den = (m.group(3), m.group(4)) if m.group(3) is not None else (m.group(5), m.group(6))
    whole, num, den = int(m.group(2)), int(num), int(den)
    if not 0 < num < den:
        return None
    value = Fraction(whole * den + num, den)
    return f"{'-' if m.group(1) else ''}{value.numerator}/{value.denominator}"


def normalize(ans: str) -> str:
    s = ans.strip()
    s = re.sub(r",\s*\\!\s*", ",", s.replace("{,}", ",").replace("\u2212", "-")).replace("\\\\", "\x01")  # keep matrix row breaks through the drops
    for tok in _DROP:
        s = s.replace(tok, "")
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac")
    s = _TEXT_WRAP.sub(r"\1", s)
    s = _DEGREE.sub("", s)
    s = s.replace(r"\%", "").replace("%", "")
    s = s.strip().rstrip(".,;:").strip()  # sentence punctuation inside the math: "$\\frac13.$"
    s = _ASSIGN.sub("", s)
    unit = _UNIT_TAIL.search(s)
    if unit and unit.group(1).lower() in (UNITS | {"pct"}) and re.fullmatch(r"-?[\d.,]+", s[:unit.start()].strip()):
        s = s[:unit.start()]
    s = s.strip()
    mixed = _mixed(s)
    if mixed is not None:  # before spaces go: "4 4/9" is 40/9, "44/9" is not
        s = mixed
    if _THOUSANDS.match(s):  # before spaces go: "1, 234" is a pair, "1,234" a number
        s = s.replace(",", "")
    return re.sub(r"\s+", "", s).replace("\x01", "\\\\")


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


def _decimal_places(s: str) -> int:
    return len(s) - s.index(".") - 1 if _DECIMAL.match(s) and "." in s else 0


def rounds_to(decimal_text: str, exact: Fraction) -> bool:
    """A decimal prediction with k >= 2 places and >= 2 significant digits stands for an exact value when
    it is that value rounded (half away from zero) or truncated to k places."""
    k = _decimal_places(decimal_text)
    digits = decimal_text.lstrip("-").replace(".", "").lstrip("0")
    if k < 2 or len(digits) < 2:
        return False
    value = Fraction(decimal_text)
    scale = 10 ** k
    scaled = abs(exact) * scale
    sign = -1 if exact < 0 else 1
    truncated = Fraction(sign * int(scaled), scale)
    rounded = Fraction(sign * int(scaled + Fraction(1, 2)), scale)
    return value in (truncated, rounded)


def _same_number(cand_text: str, cand: Fraction, gold_text: str, gold: Fraction) -> bool:
    if cand == gold:
        return True
    # tolerance only for a decimal prediction against an exact reference, never exact against exact
    return _decimal_places(cand_text) > 0 and _decimal_places(gold_text) == 0 and rounds_to(cand_text, gold)


_INF = {"\\infty": "inf", "+\\infty": "inf", "-\\infty": "-inf", "\\inf": "inf", "-\\inf": "-inf",
        "\\infinity": "inf", "+\\infinity": "inf", "-\\infinity": "-inf"}
_OPEN, _CLOSE = "([{", ")]}"


def _split_top(s: str, sep: str = ",") -> list[str] | None:
    """Split on ``sep`` outside any bracket; None when brackets do not balance."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth < 0:
                return None
        elif ch == sep and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]] if depth == 0 else None


def _scalar(s: str):
    """(value, text) of a number or an infinity, else None."""
    if s in _INF:
        return (_INF[s], s)
    value = as_number(s)
    return None if value is None else (value, s)


def _same_scalar(c, g) -> bool:
    (cv, ct), (gv, gt) = c, g
    if isinstance(cv, str) or isinstance(gv, str):
        return cv == gv
    return _same_number(ct, cv, gt, gv)


def _elements(body: str, min_parts: int = 2) -> list | None:
    parts = _split_top(body)
    if parts is None or len(parts) < min_parts:
        return None
    values = [_scalar(p) for p in parts]
    return None if any(v is None for v in values) else values


_MATCH_LIMIT = 64  # elements beyond which an unordered comparison is exact-only (no tolerance search)


def _key(item):
    """A hashable exact form of a scalar or structure (tolerance ignored)."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
        return item[0]
    kind, value = item
    if kind in ("set", "points"):
        return (kind, frozenset(_key(v) for v in value))
    if kind == "matrix":
        return (kind, tuple(tuple(_key(c) for c in row) for row in value))
    return (kind, value[0], tuple(_key(v) for v in value[1]), value[2])


def _unordered_match(cands: list, golds: list, same) -> bool:
    """Every element matched to a distinct element of the other side: exact multiset first, then a
    greedy search with ``same`` (tolerances) while the sides are small."""
    if len(cands) != len(golds):
        return False
    try:
        if Counter(map(_key, cands)) == Counter(map(_key, golds)):
            return True
    except TypeError:
        pass
    if len(cands) > _MATCH_LIMIT:
        return False
    left = list(golds)
    for c in cands:
        hit = next((j for j, g in enumerate(left) if same(c, g)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _structured(s: str):
    """Plain-number structures, compared by ``_same_structure``:

    * ``set``: ``\\{a,b\\}`` or ``{a,b}`` (unordered);
    * ``seq``: an interval or tuple ``(a,b]`` (ordered, brackets kept), or a bare list ``a, b, c``
      (ordered: a list answer is ordered unless written as a set);
    * ``points``: a bare list of tuples ``(1,2), (3,4)`` (a list of solutions: unordered);
    * ``matrix``: ``\\begin{pmatrix} .. \\end{pmatrix}`` (rows and columns in order).
    """
    if len(s) > MAX_ANSWER_CHARS:
        return None
    m = _MATRIX.match(s)
    if m:
        rows = [r for r in m.group(2).split("\\\\") if r.strip()]
        cells = [[_scalar(c) for c in r.split("&")] for r in rows]
        if not cells or any(c is None for row in cells for c in row):
            return None
        return ("matrix", cells)
    for lo, hi in (("\\{", "\\}"), ("{", "}")):
        if s.startswith(lo) and s.endswith(hi) and len(s) > len(lo) + len(hi) and \
                _split_top(s[len(lo):-len(hi)]) is not None:
            values = _elements(s[len(lo):-len(hi)], 1)
            return None if values is None else ("set", values)
    if len(s) >= 5 and s[0] in "([" and s[-1] in ")]":
        values = _elements(s[1:-1])
        if values is not None:
            return ("seq", (s[0], values, s[-1]))
    parts = _split_top(s)
    if parts is not None and len(parts) >= 2:
        scalars = [_scalar(p) for p in parts]
        if all(v is not None for v in scalars):
            return ("seq", ("", scalars, ""))
        tuples = [_structured(p) for p in parts]
        if all(t is not None and t[0] == "seq" and t[1][0] for t in tuples):
            return ("points", tuples)
    return None


def _distinct(items: list) -> list:
    return list({_key(item): item for item in items}.values())


def _same_structure(a, b) -> bool:
    (ka, va), (kb, vb) = a, b
    bare_a, bare_b = ka == "seq" and va[0] == va[2] == "", kb == "seq" and vb[0] == vb[2] == ""
    if ka == "set" and bare_b:  # against a set, a bare list is a set too: {1, -2} = "-2, 1"
        return _unordered_match(va, vb[1], _same_scalar)
    if kb == "set" and bare_a:
        return _unordered_match(va[1], vb, _same_scalar)
    if ka != kb:
        return False
    if ka == "set":
        return _unordered_match(va, vb, _same_scalar)
    if ka == "points":  # a list of solutions: each solution counts once
        return _unordered_match(_distinct(va), _distinct(vb), _same_structure)
    if ka == "matrix":
        return len(va) == len(vb) and all(len(r) == len(q) and all(map(_same_scalar, r, q)) for r, q in zip(va, vb))
    (oa, ea, ca), (ob, eb, cb) = va, vb
    return oa == ob and ca == cb and len(ea) == len(eb) and all(map(_same_scalar, ea, eb))
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


_SQ = r"\\sqrt(?:\{(\d{1,7})\}|(\d))"
_TIMES = r"(?:\\cdot|\\times|\*)?"
_COEF = r"(\d{1,7})"
_SURD_FORMS = [  # (pattern, (coef group, radicand groups, denominator group)) on a normalised answer
    (re.compile(rf"^{_COEF}?{_TIMES}{_SQ}$"), (1, (2, 3), None)),
    (re.compile(rf"^{_SQ}{_TIMES}{_COEF}$"), (3, (1, 2), None)),
    (re.compile(rf"^\\frac\{{{_COEF}?{_TIMES}{_SQ}\}}\{{{_COEF}\}}$"), (1, (2, 3), 4)),
    (re.compile(rf"^\\frac\{{{_SQ}{_TIMES}{_COEF}\}}\{{{_COEF}\}}$"), (3, (1, 2), 4)),
    (re.compile(rf"^{_COEF}?{_TIMES}{_SQ}/{_COEF}$"), (1, (2, 3), 4)),
]
_RATIONALISED = re.compile(rf"^(?:\\frac\{{{_COEF}\}}\{{{_SQ}\}}|{_COEF}/{_SQ})$")


def _surd(s: str) -> tuple[Fraction, int] | None:
    """``c * sqrt(r)`` written as ``a\\sqrt{b}``, ``\\sqrt{b}\\cdot a``, ``\\frac{a\\sqrt{b}}{c}``,
    ``\\frac{a}{\\sqrt{b}}`` ... (integers), as exact (coefficient, square-free radicand); None otherwise."""
    sign = 1
    if s.startswith("-"):
        sign, s = -1, s[1:]
    if "\\sqrt" not in s or len(s) > 60:
        return None
    coef, rad = None, None
    for pattern, (c, (r1, r2), d) in _SURD_FORMS:
        m = pattern.match(s)
        if m:
            coef = Fraction(int(m.group(c) or 1), int(m.group(d)) if d else 1) if (not d or int(m.group(d))) else None
            rad = int(m.group(r1) or m.group(r2))
            break
    else:
        m = _RATIONALISED.match(s)
        if not m:
            return None
        num = int(m.group(1) or m.group(4))
        rad = int(m.group(2) or m.group(3) or m.group(5) or m.group(6))
        coef = Fraction(num, rad) if rad else None  # a / sqrt(r) = (a / r) sqrt(r)
    if coef is None:
        return None
    if coef == 0 or rad == 0:
        return Fraction(0), 1
    root, k = 1, 2
    while k * k <= rad:  # pull squares out of the radicand: sqrt(12) = 2 sqrt(3)
        while rad % (k * k) == 0:
            rad //= k * k
            root *= k
        k += 1
    return sign * coef * root, rad


_CHOICE = re.compile(r"^\(?([A-E])\)?$")


def compare(candidate: str, gold: str) -> bool | None:
    """True/False when the rules settle it; None when a symbolic check is needed (or a side is longer than
    ``MAX_ANSWER_CHARS``: not normalised at all)."""
    if len(candidate) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return None
    a, b = normalize(candidate), normalize(gold)
    if a == b and a:
        return True
    ca, cb = _CHOICE.match(a), _CHOICE.match(b)
    if ca and cb:  # a multiple-choice letter, with or without its parentheses: "(C)" = "C"
        return ca.group(1) == cb.group(1)
    na, nb = as_number(a), as_number(b)
    # a decimal comma ("0,111", "1000,99") is read as such only where the other side is a plain number
    if na is None and nb is not None and _DECIMAL_COMMA.match(a) and not _SPACED_COMMA.search(candidate):
        a, na = a.replace(",", "."), as_number(a.replace(",", "."))
    if nb is None and na is not None and _DECIMAL_COMMA.match(b) and not _SPACED_COMMA.search(gold):
        b, nb = b.replace(",", "."), as_number(b.replace(",", "."))
    if na is not None and nb is not None:
        return _same_number(a, na, b, nb)
    sa, sb = _structured(a), _structured(b)
    if sa is not None and sb is not None:
        return _same_structure(sa, sb)
    if "\\sqrt" in a or "\\sqrt" in b:  # exact surds against each other or against an exact rational
        ra = _surd(a) or ((na, 1) if na is not None and _decimal_places(a) == 0 else None)
        rb = _surd(b) or ((nb, 1) if nb is not None and _decimal_places(b) == 0 else None)
        if ra is not None and rb is not None:
            return ra == rb
    if "i" in b:
        ca, cb = _complex(a), _complex(b)
        if ca is not None and cb is not None:
            return ca == cb
    return None


def gold_parts(gold: str) -> list[str]:
    """The parts of a reference with several: its top-level comma list, a set's elements ([gold] if one)."""
    s = gold.strip()
    for lo, hi in (("\\{", "\\}"), ("{", "}")):
        if s.startswith(lo) and s.endswith(hi) and _split_top(s[len(lo):-len(hi)]) is not None:
            s = s[len(lo):-len(hi)]
            break
    s = re.sub(r"\\q?quad|\\text\{\s*(?:and|or)\s*\}", ",", s)
    parts = [p.strip() for p in (_split_top(s) or [s]) if p.strip()]
    return parts if len(parts) >= 2 else [gold]


def compare_several(answers: list[str], gold: str) -> bool | None:
    """Several boxed answers against a reference with several parts: as a collection (the boxes are
    separate answers, e.g. all solutions), each box one part or more; None when the rules cannot settle."""
    parts = gold_parts(gold)
    cands: list[str] = []
    for answer in answers:  # a box may itself hold a list: "\\boxed{1, 2} and \\boxed{3}"
        a = answer.strip()
        one_group = a[:1] in "([{" and a[-1:] in ")]}" and _split_top(a[1:-1]) is not None
        cands.extend(p.strip() for p in ([a] if one_group else _split_top(a) or [a]) if p.strip())
    if len(cands) > len(parts):
        cands = cands[-len(parts):]  # earlier boxes held intermediate values
    if len(cands) != len(parts):
        return False
    if len(parts) > _MATCH_LIMIT:
        return None
    table = [[compare(c, g) for g in parts] for c in cands]
    if _unordered_match(list(range(len(cands))), list(range(len(parts))), lambda i, j: table[i][j] is True):
        return True
    return None if any(v is None for row in table for v in row) else False

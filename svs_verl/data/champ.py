"""The CHAMP competition problems (``champ-dataset==1.0.0``) as a held-out test set.

``champ_dataset/dataset_files/v0.json`` (72 MB, read from the wheel with ``svs_verl.assets``) holds 270
problems under ``problems``, each with ``_text`` (the problem), ``_answer`` and ``_raw_answer`` (the same,
with ``@@...@@`` around the math). Answers are free text: ``239``, ``2^(n-1)``, ``C(10, 5), or equivalently
252``, ``0 is the only possible value``, ``No``, ``x=6, y=5`` ... ``reference_answer`` keeps a problem only
when one mathematical answer can be read off: a number, or a single expression (converted to LaTeX:
``2^{n-1}``, ``\\binom{n}{4}``, ``\\sqrt{3}/3``). Yes/no, prose, lists of several solutions and equations
are dropped (a yes/no answer is also right half the time by chance). Every kept symbolic answer is then
checked with the project's verifier: the original plain form (``\\boxed{2^(n-1)}``) must be judged
correct and a wrong one (``\\boxed{(2^(n-1))+1}``) must not, so the verifier can read the gold answer.

    >>> from svs_verl.data.champ import load_problems
    >>> problems, dropped = load_problems()      # [ChampProblem(id, category, problem, answer)], {id: why}
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

DIST, VERSION, IMPORT_NAME = "champ-dataset", "1.0.0", "champ_dataset"
MEMBER = "champ_dataset/dataset_files/v0.json"


@dataclass(frozen=True)
class ChampProblem:
    id: str
    category: str
    problem: str
    answer: str          # LaTeX, as the verifier's reference
    plain: str           # the answer as CHAMP writes it (after picking one form)


_NUMBER = re.compile(r"-?\d+(?:/\d+)?|-?\d*\.\d+")
_UNIT_WORDS = r"values?|pairs?|roots?|inequalities|times|numbers?|solutions?"
_PHRASES = [
    re.compile(r"^(.+?) is the only possible value$"),
    re.compile(r"^The limit exists and is equal to (.+)$"),
    re.compile(r"^The only possible value for the limit is (.+)$"),
    re.compile(rf"^(\S+) (?:{_UNIT_WORDS})$"),
]
_EXPR_CHARS = re.compile(r"^[0-9a-zA-Z+\-*/^()!.,\[\] ]+$")
_LETTER_RUN = re.compile(r"[A-Za-z]+")


def _candidates(raw: str) -> list[str]:
    """The alternative forms of one answer ('X, or equivalently Y' -> [X, Y]); approximations dropped."""
    raw = raw.replace("−", "-").strip()
    raw = re.sub(r"\s*\(i\.e\..*\)$", "", raw)             # '100 (i.e., all values)' -> '100'
    raw = re.sub(r"^(-?\d+) \((?:none|no) [^()]*\)$", r"\1", raw)  # '0 (none of the values)' -> '0'
    out = []
    for part in re.split(r",\s*or\s+", raw):
        part = part.strip()
        if part.startswith("approximately"):
            continue
        part = re.sub(r"^(equivalently|an equivalent form such as)\s+", "", part)
        for pat in _PHRASES:
            m = pat.match(part.replace("@@", ""))
            if m:
                part = m.group(1)
                break
        out.append(part.replace("@@", "").strip().rstrip("."))
    return out


def _match_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, or -1."""
    depth = 0
    for i in range(start, len(text)):
        depth += (text[i] == "(") - (text[i] == ")")
        if depth == 0:
            return i
    return -1


def _split_top_comma(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def _binom(text: str) -> str | None:
    """``C(a, b)`` -> ``\\binom{a}{b}`` (nested allowed); None when a C(...) is malformed."""
    while True:
        m = re.search(r"(?<![A-Za-z])C\(", text)
        if not m:
            return text
        close = _match_paren(text, m.end() - 1)
        args = _split_top_comma(text[m.end():close]) if close > 0 else []
        if len(args) != 2:
            return None
        text = text[:m.start()] + "\\binom{" + args[0].strip() + "}{" + args[1].strip() + "}" + text[close + 1:]


def to_latex(plain: str) -> str | None:
    """CHAMP's plain math (``n(n+1)*2^(n-2)``, ``sqrt(3)/3``, ``C(n, 4)``) as LaTeX, or None when it is not
    a single expression we can convert."""
    text = plain.strip()
    if not text or not _EXPR_CHARS.match(text) or "..." in text or text.count("(") != text.count(")"):
        return None
    if text.startswith("[") and not re.fullmatch(r"\[-?\d+, ?-?\d+\]", text):
        return None  # only numeric intervals
    for run in _LETTER_RUN.findall(text):
        if run not in ("sqrt", "C") and len(run) > 2:
            return None  # a word (floor, sum, and, ...): not a plain expression
    text = _binom(text)
    if text is None or ("," in text and not text.startswith("[")):
        return None  # a malformed C(..), or a list of several answers
    while "sqrt(" in text:
        i = text.index("sqrt(")
        close = _match_paren(text, i + 4)
        if close < 0:
            return None
        text = text[:i] + "\\sqrt{" + text[i + 5:close] + "}" + text[close + 1:]
    while "^(" in text:
        i = text.index("^(")
        close = _match_paren(text, i + 1)
        if close < 0:
            return None
        text = text[:i] + "^{" + text[i + 2:close] + "}" + text[close + 1:]
    return text.replace("*", " \\cdot ")


def reference_answer(raw_answer: str) -> tuple[str, str] | str:
    """``(latex, plain)`` for a usable answer, else the reason it is not usable."""
    cands = _candidates(raw_answer)
    for c in cands:  # a plain number beats any other form ('C(10, 5), or equivalently 252' -> 252)
        if _NUMBER.fullmatch(c):
            return c, c
    if not cands or cands[0].lower() in ("yes", "no"):
        return "yes/no answer"
    for c in cands:
        latex = to_latex(c)
        if latex is not None:
            return latex, c
    return f"not a single expression: {raw_answer[:60]!r}"


def _verifier_accepts(items: list[tuple[str, str]]) -> list[bool]:
    """For each (latex gold, plain form): the verifier matches the plain form and rejects plain + 1."""
    from ..verify import verify_batch

    plain_resp = [f"\\boxed{{{_binom(p) or p}}}" for _, p in items]
    wrong_resp = [f"\\boxed{{({_binom(p) or p})+1}}" for _, p in items]
    golds = [g for g, _ in items]
    right = verify_batch(plain_resp + wrong_resp, golds + golds)
    n = len(items)
    return [right[i].correct and not right[n + i].correct for i in range(n)]


def load_problems(quiet: bool = False, check: bool = True) -> tuple[list[ChampProblem], dict[str, str]]:
    """Usable CHAMP problems (file order) and ``{id: reason}`` for the dropped ones (read once per process)."""
    kept, dropped = _load(quiet, check)
    return list(kept), dict(dropped)


@functools.lru_cache(maxsize=None)
def _load(quiet: bool, check: bool) -> tuple[tuple[ChampProblem, ...], dict[str, str]]:
    from ..assets import package_files

    files = package_files(DIST, VERSION, import_name=IMPORT_NAME, quiet=quiet)
    data = json.loads(files.read_bytes(MEMBER))
    kept: list[ChampProblem] = []
    dropped: dict[str, str] = {}
    for pid, p in data["problems"].items():
        text = p.get("_text")
        raw = p.get("_raw_answer") or p.get("_answer")
        if not isinstance(text, str) or not text.strip() or not isinstance(raw, str):
            dropped[pid] = "no problem text or answer"
            continue
        ref = reference_answer(raw)
        if isinstance(ref, str):
            dropped[pid] = ref
            continue
        kept.append(ChampProblem(pid, str(p.get("category", "")), text.strip(), ref[0], ref[1]))
    if check:
        symbolic = [p for p in kept if not _NUMBER.fullmatch(p.answer)]
        ok = dict(zip([p.id for p in symbolic], _verifier_accepts([(p.answer, p.plain) for p in symbolic])))
        for p in symbolic:
            if not ok[p.id]:
                dropped[p.id] = f"the verifier cannot check {p.answer!r}"
        kept = [p for p in kept if ok.get(p.id, True)]
    return tuple(kept), dropped

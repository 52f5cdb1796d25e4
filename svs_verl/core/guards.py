"""Guards on a parsed variational problem: an opt-in addition of svs-verl, not part of the paper.

The paper's synthesis reward is the solve accuracy inside the reward band and nothing else: a parsed,
non-empty problem that fits the prompt budget is solved, whatever it says. These guards, off by default
(``GuardConfig.enable``), turn a parsed problem into reward 0 (never solved) for a named reason:
``too_short``, ``too_long``, ``not_a_question``, ``copies_solution``, ``reveals_answer``,
``duplicate_of_original``, ``duplicate_of_sibling``. With ``enable`` on, each guard still has its own key
and can be switched off alone. The sibling rule compares a sample only with the *earlier samples of the
same synthesis group* (ordered by session index), so its verdict never depends on which group finished
first. The checks are linear in the text length, so they can run inline in the rollout loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ._checks import need_bool, need_fraction, need_int

TOO_SHORT = "too_short"
TOO_LONG = "too_long"
REVEALS_ANSWER = "reveals_answer"
COPIES_SOLUTION = "copies_solution"
DUPLICATE_OF_ORIGINAL = "duplicate_of_original"
DUPLICATE_OF_SIBLING = "duplicate_of_sibling"
NOT_A_QUESTION = "not_a_question"
GUARD_REASONS = (TOO_SHORT, TOO_LONG, REVEALS_ANSWER, COPIES_SOLUTION, DUPLICATE_OF_ORIGINAL,
                 DUPLICATE_OF_SIBLING, NOT_A_QUESTION)

_TOKEN = re.compile(r"\w+|[^\w\s]")
_ASKS = re.compile(
    r"\?|？|\b(find|compute|calculate|determine|evaluate|solve|what|how|which|who|when|where|show|prove|"
    r"express|simplify|give|write|count|list|identify)\b", re.IGNORECASE)


@dataclass(frozen=True)
class GuardConfig:
    """The guards (ours, off unless ``enable``) and their thresholds (each can be switched off with ``None``)."""

    enable: bool = False                  # paper / reference: no guards at all
    min_chars: int = 10                   # shorter problems are rejected as too_short
    max_chars: int = 4000                 # longer problems are rejected as too_long
    leak_min_answer_chars: int | None = 2  # an answer this long appearing as a token is a giveaway
    max_original_similarity: float | None = 0.9   # word-bigram Jaccard to the original problem
    max_sibling_similarity: float | None = 0.9    # ... to an accepted sibling synthesis
    max_solution_copy: float | None = 0.6  # share of the solution's bigrams found in the problem
    require_question: bool = True         # must ask something ('?', or find/compute/what/...)

    def __post_init__(self) -> None:
        need_bool("svs.guards.enable", self.enable)
        need_bool("svs.guards.require_question", self.require_question)
        need_int("svs.guards.min_chars", self.min_chars, 0)
        need_int("svs.guards.max_chars", self.max_chars, 1)
        if self.max_chars < self.min_chars:
            raise ValueError(f"svs.guards: need min_chars <= max_chars, got {self.min_chars}, {self.max_chars}")
        need_int("svs.guards.leak_min_answer_chars", self.leak_min_answer_chars, 1, nullable=True)
        for key in ("max_original_similarity", "max_sibling_similarity", "max_solution_copy"):
            need_fraction(f"svs.guards.{key}", getattr(self, key), nullable=True)


def _bigrams(text: str) -> set[tuple[str, ...]]:
    toks = _TOKEN.findall(text.lower())
    if len(toks) < 2:
        return {tuple(toks)} if toks else set()
    return set(zip(toks, toks[1:]))


def jaccard(a: str, b: str) -> float:
    sa, sb = _bigrams(a), _bigrams(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def containment(part: str, whole: str) -> float:
    """Share of ``part``'s word bigrams that also occur in ``whole``."""
    sp = _bigrams(part)
    return len(sp & _bigrams(whole)) / len(sp) if sp else 0.0


BOX_COMMANDS = ("\\boxed", "\\fbox")
_BRACE = re.compile(r"[{}]")


def bare_answer(answer: str) -> str:
    """The answer without ``$..$``, ``\\boxed{..}`` or ``\\fbox{..}`` around the whole of it, however deeply
    nested (braces are matched, so ``\\boxed{a}+\\boxed{b}`` is left as it is). Linear in the length: one
    pass pairs the braces, then each layer is peeled by moving two indices (no copy per layer)."""
    s, lo, hi = answer, 0, len(answer)
    match: dict[int, int] | None = None
    while True:
        while lo < hi and s[lo].isspace():
            lo += 1
        while hi > lo and s[hi - 1].isspace():
            hi -= 1
        if hi - lo >= 2 and s[lo] == "$" and s[hi - 1] == "$":
            lo, hi = lo + 1, hi - 1
            continue
        cmd = next((c for c in BOX_COMMANDS if s.startswith(c, lo, hi)), None)
        if cmd is None:
            return s[lo:hi]
        body = lo + len(cmd)
        while body < hi and s[body].isspace():
            body += 1
        if body >= hi or s[body] != "{":
            return s[lo:hi]
        if match is None:
            match = closing_braces(s)
        if match.get(body) != hi - 1:
            return s[lo:hi]
        lo, hi = body + 1, hi - 1


def closing_braces(text: str) -> dict[int, int]:
    """Position of each ``{`` -> position of its matching ``}`` (one linear pass over the braces only)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for m in _BRACE.finditer(text):
        i = m.start()
        if text[i] == "{":
            stack.append(i)
        elif stack:
            match[stack.pop()] = i
    return match


def reveals_answer(problem: str, answer: str, min_chars: int | None) -> bool:
    """Does the problem hand the answer over?

    Always a giveaway: an explicit statement such as ``= 42``, ``answer is 42`` or ``answer: 42``.
    Also a giveaway when the answer is at least ``min_chars`` long and appears as a standalone token
    (short answers such as ``3`` occur in honest problems too, so they only count in explicit form).
    """
    ans = bare_answer(answer)
    if not ans:
        return False
    esc = re.escape(ans)
    standalone = rf"(?<![\w.]){esc}(?![\w]|\.\d)"
    explicit = rf"(=|\banswer\s*(is|:)|\bequals|\bresult\s*(is|:))\s*(?:\$\s*)?{standalone}"
    if re.search(explicit, problem, re.IGNORECASE):
        return True
    return min_chars is not None and len(ans) >= min_chars and re.search(standalone, problem) is not None


def check_problem(
    problem: str,
    *,
    answer: str,
    solution: str = "",
    original: str = "",
    siblings: Iterable[str] = (),
    cfg: GuardConfig = GuardConfig(),
) -> str | None:
    """Return the first failed guard's reason, or ``None`` when the problem is accepted (always ``None``
    unless ``cfg.enable``)."""
    if not cfg.enable:
        return None
    n = len(problem.strip())
    if n < cfg.min_chars:
        return TOO_SHORT
    if n > cfg.max_chars:
        return TOO_LONG
    if cfg.require_question and not _ASKS.search(problem):
        return NOT_A_QUESTION
    if cfg.max_solution_copy is not None and solution and containment(solution, problem) >= cfg.max_solution_copy:
        return COPIES_SOLUTION
    if reveals_answer(problem, answer, cfg.leak_min_answer_chars):
        return REVEALS_ANSWER
    if cfg.max_original_similarity is not None and original and jaccard(problem, original) >= cfg.max_original_similarity:
        return DUPLICATE_OF_ORIGINAL
    if cfg.max_sibling_similarity is not None:
        for other in siblings:
            if jaccard(problem, other) >= cfg.max_sibling_similarity:
                return DUPLICATE_OF_SIBLING
    return None


def guard_all(problems: Sequence[str], **kwargs) -> list[str | None]:
    """Check problems in order; each accepted one becomes a sibling of the later ones."""
    accepted: list[str] = []
    siblings = list(kwargs.pop("siblings", ()))
    verdicts = []
    for p in problems:
        reason = check_problem(p, siblings=siblings + accepted, **kwargs)
        verdicts.append(reason)
        if reason is None:
            accepted.append(p)
    return verdicts

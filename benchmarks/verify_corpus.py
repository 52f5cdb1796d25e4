"""Build a labelled answer-grading corpus from public grader test suites, for ``verify_throughput.py --corpus``.

    python benchmarks/verify_corpus.py --math-verify PATH/TO/Math-Verify --hendrycks PATH/TO/math \
        --out /tmp/grader_corpus.jsonl

Reads the test files of local git clones (their checked-out HEAD, through ``git show``; nothing is fetched)
and writes one JSON line per case: ``{"suite", "gold", "response", "expected"}``. No case is stored in this
repository: the suites stay their authors'; this script only reads them where you cloned them.

* huggingface/Math-Verify ``tests/*.py``: every ``pytest.mark.parametrize`` case with ``gold``, ``pred``
  and ``expected`` (or ``result``) literal values; cases that need a non-default option
  (``allow_set_relation_comp``) are left out.
* hendrycks/math ``modeling/math_equivalence_test.py``: each ``assertTrue/assertFalse(is_equiv(a, b))``,
  with ``a`` the reference and ``b`` the extracted answer (given to the graders as ``$\\boxed{b}$``).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from collections import Counter
from pathlib import Path


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, text=True,
                          check=True).stdout


def _git_ls(repo: Path) -> list[str]:
    return subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.split()


def math_verify_cases(repo: Path) -> list[dict]:
    cases = []
    for path in [p for p in _git_ls(repo) if p.startswith("tests/test_") and p.endswith(".py")]:
        tree = ast.parse(_git_show(repo, path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize" and dec.args):
                    continue
                try:
                    names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                except (ValueError, AttributeError, SyntaxError):
                    continue
                label = "expected" if "expected" in names else "result" if "result" in names else None
                if label is None or "gold" not in names or "pred" not in names or len(dec.args) < 2:
                    continue
                for elt in getattr(dec.args[1], "elts", []):
                    try:
                        row = dict(zip(names, ast.literal_eval(elt)))
                    except (ValueError, SyntaxError, TypeError):
                        continue
                    if row.get("allow_set_relation_comp"):
                        continue
                    cases.append({"suite": f"math-verify:{path}:{node.name}", "gold": row["gold"],
                                  "response": row["pred"], "expected": bool(row[label])})
    return cases


def hendrycks_cases(repo: Path) -> list[dict]:
    cases = []
    tree = ast.parse(_git_show(repo, "modeling/math_equivalence_test.py"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        env: dict[str, str] = {}
        for st in node.body:
            if isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Name):
                try:
                    env[st.targets[0].id] = ast.literal_eval(st.value)
                except ValueError:
                    continue
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and \
                    getattr(st.value.func, "attr", "") in ("assertTrue", "assertFalse"):
                call = st.value.args[0]
                try:
                    a, b = [env[x.id] for x in call.args]
                except (KeyError, AttributeError, ValueError):
                    continue
                cases.append({"suite": f"hendrycks-math:{node.name}", "gold": a, "response": "$\\boxed{" + b + "}$",
                              "expected": st.value.func.attr == "assertTrue"})
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--math-verify", type=Path, help="a git clone of huggingface/Math-Verify")
    ap.add_argument("--hendrycks", type=Path, help="a git clone of hendrycks/math")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cases = []
    if args.math_verify:
        cases += math_verify_cases(args.math_verify)
    if args.hendrycks:
        cases += hendrycks_cases(args.hendrycks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(json.dumps(case) + "\n")
    print(f"{len(cases)} cases -> {args.out}: {dict(Counter(c['suite'].split(':')[0] for c in cases))}")


if __name__ == "__main__":
    main()

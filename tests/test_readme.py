"""The README stays a front page, and the documentation holds together.

README.md has at most 150 lines (the rest lives in docs/, one page per topic); every relative link in README.md
and docs/*.md points to a file that exists; every ``svs-verl COMMAND [SUBCOMMAND]`` written in code in README.md
or docs/*.md is a command the CLI (``svs_verl.cli.build_parser``) has.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from svs_verl.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 150

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")          # [text](target), not images
FENCE = re.compile(r"^(`{3,})[^\n]*\n(.*?)^\1\s*$", re.S | re.M)  # ``` ... ``` blocks
INLINE = re.compile(r"(`+)(.+?)\1")                             # `code` spans
# a command where a shell would run one: at the start of a line or an inline span (after a `$ ` prompt), or
# after `$(`, `|` or `&&` (not "svs-verl is 309x faster" in a benchmark's printed output)
COMMAND = re.compile(r"(?:^|\$\(|\||&&)[ \t]*(?:\$[ \t]+)?svs-verl((?:[ \t]+[a-z][a-z0-9-]*(?![\w.])){1,2})", re.M)


def relative_links(text: str) -> list[str]:
    """Link targets that name a file of this repository (no scheme, not a bare #anchor), anchor removed."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def code_of(text: str) -> list[str]:
    """The fenced blocks and the inline code spans of a markdown text."""
    blocks = [m.group(2) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    return blocks + [m.group(2) for m in INLINE.finditer(prose)]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def named_commands(text: str) -> list[tuple[str, ...]]:
    """``svs-verl WORD [WORD]`` as written in code, e.g. ("data", "prepare"), ("check-config",)."""
    found = []
    for code in code_of(text):
        for m in COMMAND.finditer(code):
            found.append(tuple(m.group(1).split()))
    return found


def unknown_commands(words: tuple[str, ...], parser: argparse.ArgumentParser) -> str | None:
    """None if the CLI has ``svs-verl WORDS`` (a second word counts only where the first has subcommands)."""
    top = subcommands(parser)
    if words[0] not in top:
        return f"svs-verl {words[0]}: no such command (the CLI has {sorted(top)})"
    nested = subcommands(top[words[0]])
    if len(words) > 1 and nested and words[1] not in nested:
        return f"svs-verl {words[0]} {words[1]}: no such subcommand (it has {sorted(nested)})"
    return None


def test_readme_is_at_most_150_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines, more than {MAX_README_LINES}: move a section to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = [t for t in relative_links(page.read_text(encoding="utf-8")) if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"


def test_readme_links_a_page_per_topic():
    targets = {Path(t).name for t in relative_links(README.read_text(encoding="utf-8")) if t.startswith("docs/")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages <= targets, f"docs pages the README does not link: {sorted(pages - targets)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_command_exists(page: Path):
    parser = build_parser()
    named = named_commands(page.read_text(encoding="utf-8"))
    if page == README:
        assert ("check-config",) in named and ("configs",) in named, "README: the train command and check-config"
    bad = sorted({e for e in (unknown_commands(w, parser) for w in named) if e})
    assert not bad, f"{page.relative_to(ROOT)}: {bad}"


def test_the_checks_catch_what_they_look_for():
    """The helpers above find a broken link and an unknown command, so the tests can fail."""
    text = "see [x](docs/none.md#a), [y](https://e.org/a.md), [z](#top)\n```bash\nsvs-verl nosuch --x\n```\n" \
           "and `svs-verl data prepar` here; svs-verl runs this in prose\n"
    assert relative_links(text) == ["docs/none.md"]
    named = named_commands(text)
    assert named == [("nosuch",), ("data", "prepar")]
    parser = build_parser()
    assert all(unknown_commands(w, parser) for w in named)
    assert unknown_commands(("data", "prepare"), parser) is None
    assert unknown_commands(("check-config",), parser) is None

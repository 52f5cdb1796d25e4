"""Every key of every config under configs/ says what it does: a comment on its own line (after the value)
or on the line above. configs/backend/cpu.yaml and configs/size/cpu.yaml are checked by their owner's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NOT_HERE = {"backend/cpu.yaml", "size/cpu.yaml"}
FILES = sorted(name for name in (str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml")) if name not in NOT_HERE)


def uncommented_keys(text: str) -> list[str]:
    """``line N: key`` for every mapping key without a comment on its line or the line above. YAML's own
    parser finds the keys and where their values end, so a ``#`` inside a quoted value is no comment."""
    lines = text.splitlines()
    missing = []

    def has_comment(key, value) -> bool:
        row = key.start_mark.line
        if row > 0 and lines[row - 1].lstrip().startswith("#"):
            return True
        same_line = isinstance(value, yaml.ScalarNode) or value.flow_style
        end = value.end_mark if same_line and value.end_mark.line == row else key.end_mark
        return lines[row][end.column:].split(":", 1)[-1 if end is key.end_mark else 0].lstrip().startswith("#")

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{path}.{key.value}" if path else str(key.value)
                if not has_comment(key, value):
                    missing.append(f"line {key.start_mark.line + 1}: {name}")
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(yaml.compose(text), "")
    return missing


@pytest.mark.parametrize("name", FILES)
def test_every_key_is_commented(name):
    missing = uncommented_keys((CONFIGS / name).read_text(encoding="utf-8"))
    assert not missing, f"configs/{name}: keys without a comment: {', '.join(missing)}"


def test_the_rule_finds_what_it_should():
    assert FILES and "paper_common.yaml" in FILES and "svs_reference.yaml" in FILES
    assert uncommented_keys("a: 1   # one\n# two\nb:\n  c: 'x # not a comment'\n") == ["line 4: b.c"]
    assert uncommented_keys("a: [1, 2]  # flow\nb: \"#\"\n") == ["line 2: b"]
    assert uncommented_keys("s:  # section\n  k: v  # key\n") == []

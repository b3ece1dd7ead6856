"""The README against the code: its generated blocks are dated, name the machine and the command
that wrote them, its test count is the one pytest collects, and every `make` target, `dressfinder`
command and flag it names exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dressfinder.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
FLAG = re.compile(r"(?<![\w-])--(?!dressfinder-)[a-z][a-z0-9-]*")   # not the embed block's CSS variables
BLOCK = re.compile(r"<!-- (\w+):start -->\n(.*?)<!-- \1:end -->", re.S)
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
# a script run from the command line: at the root, in scripts/ or in bench/ (not a package module)
SCRIPT = re.compile(r"(?<![\w/.-])((?:scripts/|bench/)?[\w-]+\.py)\b")


def snippets(text: str) -> list[str]:
    """Every command-like piece of the text: fenced code lines and inline code (which may wrap)."""
    out: list[str] = []
    for fence in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        out += [ln.split("#")[0].strip() for ln in fence.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    out += [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose)]
    return [s for s in out if s]


def dressfinder_options() -> dict[str, set[str]]:
    """Each `dressfinder` subcommand and the option strings it takes."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}


def script_flags(script: str, cache: dict[str, set[str]] = {}) -> set[str]:  # noqa: B006 (a cache)
    """The flags a script of the repository prints in its --help."""
    if script not in cache:
        out = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0, f"{script} --help failed: {out.stderr[-300:]}"
        cache[script] = set(FLAG.findall(out.stdout))
    return cache[script]


def named_scripts(docs: list[Path]) -> set[str]:
    """The repository's Python scripts the docs name (paths that exist)."""
    return {m for doc in docs for s in snippets(doc.read_text()) for m in SCRIPT.findall(s)
            if (REPO / m).is_file()}


def test_every_make_target_named_exists():
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.M))
    named = {m for s in snippets(README.read_text()) for m in re.findall(r"\bmake ([a-z][\w-]*)", s)}
    assert named, "the README names no make target: the parser above is broken"
    assert named <= targets, f"README names make targets the Makefile lacks: {sorted(named - targets)}"


def test_every_command_and_flag_named_exists():
    options = dressfinder_options()
    every = set().union(*options.values()) | {"--help", "--version", "--debug"}
    for script in named_scripts([README, *DOCS]):
        every |= script_flags(script)
    checked, unknown = 0, []
    for doc in [README, *DOCS]:
        for s in snippets(doc.read_text()):
            words = s.split()
            scripts = [m for m in SCRIPT.findall(s) if (REPO / m).is_file()]
            if scripts:                                        # `python scripts/x.py --flag`
                own = script_flags(scripts[0]) | {"--help"}
                unknown += [f"{doc.name}: {scripts[0]} has no {f}" for f in FLAG.findall(s) if f not in own]
                continue
            if words[0] == "dressfinder" and len(words) > 1 and not words[1].startswith("-") \
                    and not words[1].endswith(":"):            # not a quoted message: `dressfinder index: error`
                cmd = words[1]
                if cmd not in options:
                    unknown.append(f"{doc.name}: `dressfinder {cmd}` is no command")
                    continue
                own = options[cmd] | {"--help", "--debug"}
                unknown += [f"{doc.name}: `dressfinder {cmd}` has no {f}" for f in FLAG.findall(s)
                            if f not in own and f.split("=")[0] not in own]
                checked += 1
            elif words[0] in options and any(w.startswith("--") for w in words[1:]):   # `search --json`
                unknown += [f"{doc.name}: `{words[0]}` has no {f}" for f in FLAG.findall(s) if f not in options[words[0]]]
                checked += 1
            else:
                unknown += [f"{doc.name}: no command takes {f} (in `{s[:60]}`)" for f in FLAG.findall(s)
                            if f not in every and not s.startswith(("curl", "docker", "pip", "apt", "npm", "sqlite3", "."))]
    assert checked > 20, f"only {checked} dressfinder commands found in the docs: the parser above is broken"
    assert not unknown, "\n".join(unknown)


def test_the_check_above_can_fail():
    """The flag check is not vacuous: a made-up flag and command are caught."""
    options = dressfinder_options()
    assert "--json" in options["search"] and "--jsonx" not in options["search"]
    assert "indexx" not in options and "index" in options
    assert FLAG.findall("dressfinder search --store s --max-price 60 x.jpg") == ["--store", "--max-price"]


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: p.name)
def test_generated_blocks_carry_date_machine_and_command(doc):
    for name, body in BLOCK.findall(doc.read_text()):
        assert DATE.search(body), f"{doc.name}'s {name} block has no date"
        assert re.search(r"\b\d+ (cores|CPUs)\b", body), f"{doc.name}'s {name} block does not name the machine"
        assert re.search(r"((Made|Measured|Written) by|Command:) `[^`]+`", body), f"{doc.name}'s {name} block names no command"


def test_readme_test_count_is_the_collected_one():
    blocks = dict(BLOCK.findall(README.read_text()))
    assert "tests" in blocks, "README.md has no tests block (python scripts/test_report.py --readme README.md)"
    stated = int(re.search(r"\*\*(\d+) tests\*\*", blocks["tests"]).group(1))
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                         cwd=REPO, capture_output=True, text=True, timeout=300).stdout
    collected = int(re.search(r"^(\d+) tests? collected", out, re.M).group(1))
    assert stated == collected, (f"README says {stated} tests, pytest collects {collected}: "
                                 "rerun python scripts/test_report.py --readme README.md")

"""Docs that cannot rot: every command line of README.md and docs/*.md parses with the CLI's own parser,
and the README's Python snippets run.

Command lines are read from fenced blocks whose language is empty, `sh`, `shell`, `bash` or `console`:
backslash continuations are joined, a leading `$ ` and a trailing `# comment` are dropped, and every line
that then starts with `edgeshuffle` is parsed with click's `make_context` (the group's, then the
subcommand's), so a renamed or removed option or verb, or a value an option no longer takes, fails here.
Nothing is run: paths in the docs need not exist. Blocks marked `text` are not read: they hold output, or
commands of a feature that does not exist yet (say so next to the block). `python` blocks of the README are
run in order, in one namespace, in a temporary folder; those of docs/ are compiled and their
`from edgeshuffle... import name` lines checked.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import click
import pytest

from edgeshuffle.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"", "sh", "shell", "bash", "console"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(path.read_text())]


def command_lines(text: str) -> list[str]:
    """The `edgeshuffle ...` lines of one shell block, continuations joined, prompts and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        line = " ".join(re.sub(r"\s+#.*$", "", line).split())
        if re.match(r"(\S*/)?edgeshuffle(\s|$)", line):
            lines.append(line)
    return lines


def parse_command_line(line: str) -> None:
    """Parse one command line as the console script would, without running it (raises click's errors)."""
    args = shlex.split(line)[1:]
    try:
        with main.make_context("edgeshuffle", list(args)) as context:
            rest = context._protected_args + context.args
            name, command, rest = main.resolve_command(context, rest)
            with command.make_context(name, rest, parent=context):
                pass
    except click.exceptions.Exit:  # --help, --version
        pass


def all_command_lines() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for language, body in fenced_blocks(path):
            if language in SHELL_LANGUAGES:
                found += [(path.relative_to(ROOT).as_posix(), line) for line in command_lines(body)]
    return found


COMMANDS = all_command_lines()


def test_the_docs_name_every_verb():
    verbs = {next(a for a in shlex.split(line)[1:] if not a.startswith("-")) for _, line in COMMANDS}
    assert set(main.commands) <= verbs, f"verbs without a documented command line: {set(main.commands) - verbs}"


@pytest.mark.parametrize("where,line", COMMANDS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(COMMANDS)])
def test_every_documented_command_line_parses(where, line):
    try:
        parse_command_line(line)
    except click.ClickException as error:
        pytest.fail(f"{where}: `{line}` does not parse: {error.format_message()}")


@pytest.mark.parametrize("line,culprit", [
    ("edgeshuffle convert -o out --made-up-option 3", "--made-up-option"),
    ("edgeshuffle quantize m.keras -c images -o out --num-calibrations 8", "--num-calibrations"),
    ("edgeshuffle bench int8.tflite --runs many", "many"),
    ("edgeshuffle info --scale 3", "3"),
    ("edgeshuffle deploy model.keras", "deploy"),
])
def test_a_renamed_option_or_verb_fails_to_parse(line, culprit):
    """The check can fail: what a stale doc would hold is refused."""
    with pytest.raises(click.UsageError, match=re.escape(culprit)):
        parse_command_line(line)


def test_continuations_prompts_and_comments_are_handled():
    block = "$ edgeshuffle info \\\n    -g 8 -s 0.5   # a comment\nls build\n.venv/bin/edgeshuffle bench a.tflite\n"
    assert command_lines(block) == ["edgeshuffle info -g 8 -s 0.5", ".venv/bin/edgeshuffle bench a.tflite"]


def test_the_readme_python_snippets_run(tmp_path, monkeypatch):
    snippets = [body for language, body in fenced_blocks(ROOT / "README.md") if language == "python"]
    assert snippets, "the README shows the Python API"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for snippet in snippets:
        exec(compile(snippet, "README.md", "exec"), namespace)


@pytest.mark.parametrize("path", [p for p in DOCS[1:] if any(lang == "python" for lang, _ in fenced_blocks(p))],
                         ids=lambda p: p.name)
def test_the_docs_python_snippets_import_what_exists(path):
    for language, body in fenced_blocks(path):
        if language != "python":
            continue
        tree = ast.parse(body, filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgeshuffle"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module} has no {alias.name}"


def test_relative_links_point_to_files_and_headings():
    def anchors(path: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}

    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"\w+://", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.name}: broken link {target}"
            if anchor:
                assert anchor in anchors(linked), f"{path.name}: no heading for {target}"

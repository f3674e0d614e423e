"""The shell commands that README.md and docs/plugins.md document, as a new user would type them.

`documented_commands(path)` reads a Markdown file and returns every command line found in fenced
``bash``/``sh``/``shell``/``console`` blocks and in 4-space-indented code blocks: lines starting with
``harness ``, ``make `` or ``pip install `` after a leading ``$ `` prompt is stripped, with ``\\``
continuations joined and a trailing ``# comment`` removed. Each comes back as a `DocCommand` with the
file and line, so a test can name where a command it cannot place was written.

`expand_synopsis(text)` turns a synopsis such as ``harness compare RUN_A RUN_B [--protocol anomalous]``
into the concrete forms a test runs: every optional ``[...]`` group left out, then every group put in
(each alternative of ``a | b`` once), with ``...`` repetition marks dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL_FENCES = {"bash", "sh", "shell", "console"}
COMMAND_STARTS = ("harness ", "make ", "pip install ")


@dataclass(frozen=True)
class DocCommand:
    """One documented command after normalisation, and where it was written."""

    text: str
    file: str
    line: int


def strip_comment(line: str) -> str:
    """`line` without a trailing shell comment (a ``#`` after whitespace, outside quotes)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def _code_lines(markdown: str):
    """(line number, text) of every line inside a shell fence or a 4-space-indented block."""
    fence = None  # the language of the open fence, "" for one without
    previous_blank = True
    in_indented = False
    for number, raw in enumerate(markdown.splitlines(), start=1):
        stripped = raw.strip()
        if fence is not None:
            if stripped.startswith("```"):
                fence = None
            elif fence in SHELL_FENCES:
                yield number, raw.strip()
            continue
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower()
            in_indented = False
            continue
        indented = raw.startswith("    ") and stripped != ""
        # An indented block starts after a blank line (otherwise it is a continued paragraph or list item).
        if indented and (previous_blank or in_indented):
            in_indented = True
            yield number, raw[4:].rstrip()
        elif stripped:
            in_indented = False
        previous_blank = stripped == ""


def documented_commands(path: Path) -> list[DocCommand]:
    """Every command documented in the Markdown file `path`, in order of appearance."""
    found: list[DocCommand] = []
    pending: tuple[int, str] | None = None
    for number, line in _code_lines(Path(path).read_text(encoding="utf-8")):
        if pending is not None:
            start, text = pending
            line = text + " " + line.strip()
            number = start
            pending = None
        else:
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:].lstrip()
        if line.endswith("\\"):
            pending = (number, line[:-1].rstrip())
            continue
        if line.startswith(COMMAND_STARTS):
            found.append(DocCommand(" ".join(strip_comment(line).split()), Path(path).name, number))
    return found


_GROUP = re.compile(r"\[([^\[\]]*)\]")


def expand_synopsis(text: str) -> list[str]:
    """The concrete forms of a synopsis: optional groups all left out, then all put in per alternative."""
    groups = _GROUP.findall(text)

    def clean(form: str) -> str:
        return " ".join(word for word in form.split() if word != "...")

    if not groups:
        return [clean(text)]
    forms = [clean(_GROUP.sub("", text))]
    widest = max(len(group.split("|")) for group in groups)
    for choice in range(widest):
        def pick(match):
            options = [option.strip() for option in match.group(1).split("|")]
            return options[min(choice, len(options) - 1)]
        forms.append(clean(_GROUP.sub(pick, text)))
    return forms

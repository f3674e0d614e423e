"""Prompt templates as objects: load and check them, compile them once, hash their source.

Private to `harness.prompts`, which documents the template convention and
re-exports the public names; import them from there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from harness.errors import HarnessError

ROLES = ("system", "user", "assistant")

_HEADER_RE = re.compile(r"^[ \t]*\[\[([A-Za-z_]+)\]\][ \t]*$", re.MULTILINE)
_ROLE_MARKER = "\x00role:{}\x00"
#: Where a role header stood in the rendered text (see `compile_template`).
ROLE_MARKER_RE = re.compile(r"\x00role:([a-z]+)\x00")
_LEADING_COMMENT_RE = re.compile(r"^\s*\{#-?(.*?)-?#\}", re.DOTALL)


class TemplateError(HarnessError):
    """A prompt template that cannot be loaded or rendered."""


class MissingImageError(TemplateError):
    """A template asked for an image the caller did not provide."""


@dataclass(frozen=True)
class PromptTemplate:
    """A named Jinja2 prompt template; ``origin`` says where it came from (a file, a package)."""

    name: str
    source: str
    description: str = ""
    origin: str = ""

    @property
    def hash(self) -> str:
        """sha256 of the source, first 16 hex characters."""
        return sha16(self.source.encode("utf-8"))

    @property
    def where(self) -> str:
        """How errors name this template."""
        return f"{self.name!r} ({self.origin})" if self.origin else repr(self.name)


_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)

# (name, origin, source) -> compiled template; compiling is the slow part of rendering.
_COMPILED: dict[tuple[str, str, str], jinja2.Template] = {}


def compile_template(template: PromptTemplate) -> jinja2.Template:
    """The template compiled (once per source), role headers marked; a syntax error raises `TemplateError`."""
    cached = _COMPILED.get((template.name, template.origin, template.source))
    if cached is not None:
        return cached
    filename = template.origin or template.name
    source = _mark_headers(template)
    try:
        code = _ENV.compile(source, name=template.name, filename=filename)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(
            f"prompt template {template.where}: syntax error on line {error.lineno}: {error.message}"
        ) from error
    compiled = _ENV.template_class.from_code(_ENV, code, _ENV.globals, None)
    if len(_COMPILED) > 256:
        _COMPILED.clear()
    _COMPILED[(template.name, template.origin, template.source)] = compiled
    return compiled


def _mark_headers(template: PromptTemplate) -> str:
    """The source with each role-header line turned into a role marker.

    Headers are found in the template source, not in the rendered text, so a
    header right after a block tag (whose newline trim_blocks eats) still
    starts a message, and a class description that happens to contain
    ``[[user]]`` cannot start one. Line numbers are unchanged.
    """

    def mark(match: re.Match) -> str:
        role = match.group(1)
        if role not in ROLES:
            line = template.source.count("\n", 0, match.start()) + 1
            raise TemplateError(
                f"prompt template {template.where}: unknown role header [[{role}]] on line {line}; "
                f"use {', '.join(f'[[{r}]]' for r in ROLES)}"
            )
        return _ROLE_MARKER.format(role)

    return _HEADER_RE.sub(mark, template.source)


def template_description(source: str) -> str:
    """The text of a leading ``{# ... #}`` comment, whitespace collapsed; empty when there is none."""
    match = _LEADING_COMMENT_RE.match(source)
    return " ".join(match.group(1).split()) if match else ""


def template_from_text(name: str, source: str, origin: str = "", description: str | None = None) -> PromptTemplate:
    """A checked template from its source: a syntax error raises `TemplateError` with the line.

    ``description`` defaults to the leading Jinja comment.
    """
    if description is None:
        description = template_description(source)
    template = PromptTemplate(name=name, source=source, description=description, origin=origin)
    compile_template(template)
    return template


def load_template_file(path: str | Path) -> PromptTemplate:
    """Load a template file; its name is the file name without ``.j2``.

    A missing file or a Jinja syntax error raises `TemplateError` naming the
    file (and the line of the error).
    """
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise TemplateError(f"prompt template file {path} not found") from error
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"prompt template file {path} cannot be read: {error}") from error
    name = path.name[: -len(".j2")] if path.name.endswith(".j2") else path.stem
    return template_from_text(name, source, origin=str(path))


def sha16(data: bytes) -> str:
    """sha256 of ``data``, first 16 hex characters: every hash of a template or prompt."""
    return hashlib.sha256(data).hexdigest()[:16]

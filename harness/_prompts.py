"""Prompt templates: the template object, loading and compiling (once per source), rendering into a
`Prompt` for one sample, hashes. Private to `harness.prompts`, which documents the convention and
re-exports the public names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jinja2

from harness.errors import HarnessError
from harness.gates import GATE_MODES
from harness.types import Category, ClassInfo, ImagePart, Message, Prompt, TextPart
from harness.visual import PromptPictures

ROLES = ("system", "user", "assistant")

_HEADER_RE = re.compile(r"^[ \t]*\[\[([A-Za-z_]+)\]\][ \t]*$", re.MULTILINE)
_ROLE_MARKER = "\x00role:{}\x00"
#: Where a role header stood in the rendered text (see `compile_template`).
_ROLE_MARKER_RE = re.compile(r"\x00role:([a-z]+)\x00")
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
    """The source with each role-header line turned into a role marker, line numbers unchanged.

    Read from the source, not the rendered text, so a header right after a block tag (whose newline
    trim_blocks eats) still starts a message, and a class description holding ``[[user]]`` cannot.
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
    """A checked template from its source (a syntax error: `TemplateError` with the line); ``description``
    defaults to the leading Jinja comment."""
    if description is None:
        description = template_description(source)
    template = PromptTemplate(name=name, source=source, description=description, origin=origin)
    compile_template(template)
    return template


def load_template_file(path: str | Path) -> PromptTemplate:
    """Load a template file, named by its file name without ``.j2``; a missing file or a syntax error is a
    `TemplateError` naming the file (and line)."""
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


# The public module's name, so that logging configured for harness.prompts still sees the drops.
log = logging.getLogger("harness.prompts")

#: Which images survive when ``max_images`` is smaller than the number a template shows:
#: earlier names are kept first; names not listed come last, in template order.
IMAGE_PRIORITY: tuple[str, ...] = ("query", "outlined", "reference", "crop", "heatmap")

_IMAGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# NUL never occurs in rendered text otherwise (it is stripped from category and class text),
# so these markers cannot be faked.
_MARKER = "\x00image:{}\x00"
_MARKER_RE = re.compile(r"\x00image:([^\x00]*)\x00")
_BLANK_RUN_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def template_variables_doc() -> dict[str, str]:
    """The variables and functions a template can use, with one line each (for docs and `harness` help)."""
    return {
        "category": "the category name, e.g. 'metal_nut'",
        "gate_mode": "what happened before the model sees the image: 'detector' (a detector flagged it; "
                     "an outline is the region it found), 'oracle' (it is known to be defective; an outline is "
                     "the annotated defect region) or 'none' (nothing judged it: it may be normal, 'good' is a candidate)",
        "object": "what a normal part of the category looks like (may be empty)",
        "guidance": "category-specific hints for the classifier (may be empty)",
        "classes": "the candidate classes in the order given: each has key, name, description, number (1..n)",
        "has_image(name)": "true when the image NAME is provided (query, reference, outlined, crop, heatmap)",
        "image(name)": "places the image NAME here; an error when it is not provided",
        "extra": "a dict of caller-supplied values (use extra.get('x') for optional ones)",
    }


def image_digest(image: Any) -> str:
    """sha256 over an image's mode, size and raw pixel bytes, first 16 hex characters."""
    header = f"{image.mode}|{image.size[0]}x{image.size[1]}|".encode("ascii")
    return sha16(header + image.tobytes())


def render_prompt(template: PromptTemplate, *, category: Category, candidates: list[ClassInfo],
                  images: Mapping[str, Any], max_images: int | None = None, extra: dict | None = None,
                  gate_mode: str = "detector") -> Prompt:
    """Render ``template`` into a `Prompt` for one sample.

    ``candidates`` are numbered 1..n in order. ``images`` maps names (``query``, ``reference``,
    ``outlined``, ``crop``, ``heatmap``) to PIL images, None meaning not provided (`harness.visual.PromptPictures`
    draws only those shown). ``gate_mode`` (one
    of `harness.gates.GATE_MODES`) says what happened to the image before (default: a detector's flag).
    A template showing more than ``max_images`` images is rendered again without the lowest of
    `IMAGE_PRIORITY`, as if not provided (so text guarded by ``has_image`` goes too), logged at INFO.
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    if gate_mode not in GATE_MODES:
        raise ValueError(f"gate_mode must be one of {', '.join(GATE_MODES)}, got {gate_mode!r}")
    # Pictures drawn on demand stay so: only those the template shows are drawn (and hashed).
    provided = images if isinstance(images, PromptPictures) else {n: i for n, i in images.items() if i is not None}
    for name in provided:
        if not _IMAGE_NAME.match(name):
            raise TemplateError(f"image name {name!r} is not valid: use letters, digits, '_', '-' or '.'")

    messages, used = _render_messages(template, category, candidates, provided, set(), extra, gate_mode)
    if max_images is not None and len(used) > max_images:
        keep = _images_to_keep(used, max_images)
        dropped = {name for name in used if name not in keep}
        log.info("prompt template %s shows %d images, more than max_images=%d: dropping %s",
                 template.name, len(used), max_images, ", ".join(sorted(dropped)))
        messages, used = _render_messages(template, category, candidates, provided, dropped, extra, gate_mode)
        if len(used) > max_images:  # the same image placed several times
            raise TemplateError(
                f"prompt template {template.where} shows {len(used)} images even after dropping "
                f"optional ones, more than max_images={max_images}"
            )

    digests = {name: image_digest(provided[name]) for name in set(used)}
    parts_messages = [
        Message(role=role, parts=[
            ImagePart(name=p, image=provided[p], digest=digests[p]) if kind == "image" else TextPart(p)
            for kind, p in parts
        ])
        for role, parts in messages
    ]
    canonical = [[role, [[kind, p] for kind, p in parts]] for role, parts in messages]
    canonical_json = json.dumps([template.name, template.hash, canonical], ensure_ascii=False, separators=(",", ":"))
    prompt_hash = sha16(canonical_json.encode("utf-8"))
    request_hash = sha16("\n".join([prompt_hash, *(digests[name] for name in used)]).encode("ascii"))
    return Prompt(template=template.name, messages=parts_messages, candidates=list(candidates), hash=prompt_hash,
                  request_hash=request_hash)


def _images_to_keep(used: list[str], limit: int) -> set[str]:
    distinct = list(dict.fromkeys(used))
    rank = {name: i for i, name in enumerate(IMAGE_PRIORITY)}
    ordered = sorted(distinct, key=lambda n: (rank.get(n, len(rank)), distinct.index(n)))
    keep: set[str] = set()
    count = 0
    for name in ordered:
        uses = used.count(name)
        if count + uses <= limit:
            keep.add(name)
            count += uses
    return keep


def _render_messages(template: PromptTemplate, category: Category, candidates: list[ClassInfo],
                     provided: Mapping[str, Any], dropped: set[str], extra: dict | None,
                     gate_mode: str) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
    """Render to [(role, [(kind, text-or-image-name)])] and the image names in order of use."""
    compiled = compile_template(template)
    available = [name for name in provided if name not in dropped]

    def has_image(name: str) -> bool:
        return name in provided and name not in dropped

    def image(name: str) -> str:
        if name in dropped:
            return ""  # provided but over the max_images budget: leave it out
        if name not in provided:
            raise MissingImageError(
                f"prompt template {template.where} asks for image {name!r}, which was not provided "
                f"(provided: {', '.join(available) or 'none'}); guard optional images with "
                f'{{% if has_image("{name}") %}}'
            )
        return _MARKER.format(name)

    variables = {
        "category": _safe(category.name),
        "gate_mode": gate_mode,
        "object": _safe(category.object_description or ""),
        "guidance": _safe(category.guidance or ""),
        "classes": [
            {"key": _safe(c.key), "name": _safe(c.name), "description": _safe(c.description or ""), "number": i}
            for i, c in enumerate(candidates, start=1)
        ],
        "has_image": has_image,
        "image": image,
        "extra": dict(extra or {}),
    }
    try:
        text = compiled.render(variables)
    except TemplateError:
        raise
    except jinja2.UndefinedError as error:
        raise TemplateError(
            f"prompt template {template.where}{_line_of(error, template)}: {error.message}; "
            f"variables: {', '.join(template_variables_doc())}"
        ) from error
    except Exception as error:
        raise TemplateError(
            f"prompt template {template.where}{_line_of(error, template)} failed to render: "
            f"{type(error).__name__}: {error}"
        ) from error
    messages = _split_messages(text, template)
    used = [p for _, parts in messages for kind, p in parts if kind == "image"]
    return messages, used


def _line_of(error: BaseException, template: PromptTemplate) -> str:
    """', line N' for the template line an error was raised at, when the traceback knows it."""
    filename = template.origin or template.name
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line else ""


def _split_messages(text: str, template: PromptTemplate) -> list[tuple[str, list[tuple[str, str]]]]:
    headers = list(_ROLE_MARKER_RE.finditer(text))
    if not headers:
        sections = [("user", text)]
    else:
        before = text[: headers[0].start()]
        if before.strip():
            raise TemplateError(
                f"prompt template {template.where}: text before the first role header "
                f"({before.strip()[:40]!r}...); start the template with [[system]] or [[user]]"
            )
        sections = []
        for i, match in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            sections.append((match.group(1), text[match.end(): end]))

    messages = []
    for role, body in sections:
        parts: list[tuple[str, str]] = []
        pos = 0
        for match in _MARKER_RE.finditer(body):
            _add_text(parts, body[pos: match.start()])
            parts.append(("image", match.group(1)))
            pos = match.end()
        _add_text(parts, body[pos:])
        if parts:  # a section left empty by conditionals is no message
            messages.append((role, parts))
    if not messages:
        raise TemplateError(f"prompt template {template.where} rendered to an empty prompt")
    return messages


def _add_text(parts: list[tuple[str, str]], text: str) -> None:
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_RUN_RE.sub("\n\n", text).strip()
    if text:
        parts.append(("text", text))


def _safe(text: str) -> str:
    """Data text without NUL, so it can never fake an image or role marker."""
    return text.replace("\x00", "")


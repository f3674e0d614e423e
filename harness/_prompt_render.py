"""Render a prompt template into a `Prompt` for one sample: variables, images, messages, hashes.

Private to `harness.prompts`, which documents the template convention and
re-exports the public names; import them from there.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping

import jinja2

from harness._prompt_template import (
    ROLE_MARKER_RE, MissingImageError, PromptTemplate, TemplateError, compile_template, sha16,
)
from harness.gates import GATE_MODES
from harness.types import Category, ClassInfo, ImagePart, Message, Prompt, TextPart

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


def render_prompt(
    template: PromptTemplate,
    *,
    category: Category,
    candidates: list[ClassInfo],
    images: Mapping[str, Any],
    max_images: int | None = None,
    extra: dict | None = None,
    gate_mode: str = "detector",
) -> Prompt:
    """Render ``template`` into a `Prompt` for one sample.

    ``candidates`` are numbered 1..n in the order given. ``images`` maps names
    (``query``, ``reference``, ``outlined``, ``crop``, ``heatmap``) to PIL
    images; a None value counts as not provided. ``gate_mode`` (one of
    `harness.gates.GATE_MODES`; the runner passes its gate's `Gate.mode`) says
    what happened to the image before the model sees it; the default is
    VELM's setting, a detector's flag.

    With ``max_images``, when the template would show more images than that,
    images are dropped by `IMAGE_PRIORITY` (query kept first, then outlined,
    reference, crop, heatmap) and the template is rendered again as if the
    dropped ones had not been provided, so text guarded by ``has_image`` goes
    with them. The drop is logged at INFO level.
    """
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images}")
    if gate_mode not in GATE_MODES:
        raise ValueError(f"gate_mode must be one of {', '.join(GATE_MODES)}, got {gate_mode!r}")
    provided = {name: img for name, img in images.items() if img is not None}
    for name in provided:
        if not _IMAGE_NAME.match(name):
            raise TemplateError(f"image name {name!r} is not valid: use letters, digits, '_', '-' or '.'")

    messages, used = _render_messages(template, category, candidates, provided, set(), extra, gate_mode)
    if max_images is not None and len(used) > max_images:
        keep = _images_to_keep(used, max_images)
        dropped = {name for name in used if name not in keep}
        log.info(
            "prompt template %s shows %d images, more than max_images=%d: dropping %s",
            template.name, len(used), max_images, ", ".join(sorted(dropped)),
        )
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
    prompt_hash = sha16(
        json.dumps([template.name, template.hash, canonical], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    )
    request_hash = sha16("\n".join([prompt_hash, *(digests[name] for name in used)]).encode("ascii"))
    return Prompt(
        template=template.name,
        messages=parts_messages,
        candidates=list(candidates),
        hash=prompt_hash,
        request_hash=request_hash,
    )


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


def _render_messages(
    template: PromptTemplate,
    category: Category,
    candidates: list[ClassInfo],
    provided: Mapping[str, Any],
    dropped: set[str],
    extra: dict | None,
    gate_mode: str,
) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[str]]:
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
    headers = list(ROLE_MARKER_RE.finditer(text))
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


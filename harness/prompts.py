"""Prompt templates: load, render and hash them.

A template is Jinja2 text that renders to a chat. The convention:

- A source line holding only a role header -- ``[[system]]``, ``[[user]]`` or
  ``[[assistant]]`` -- starts a message with that role (headers may sit inside
  ``{% if %}`` blocks; a section that renders empty is dropped). Text before
  the first header must be blank; a template without headers is one user
  message. Headers are read from the template source, never from inserted
  data, so a class description cannot start a message.
- ``{{ image("query") }}`` places a named image at that point of the current
  message. Optional images are guarded: ``{% if has_image("outlined") %}``.
- A leading Jinja comment ``{# ... #}`` is the template's one-line description.

Rendering splits each message into text and image parts in order; text parts lose blank edges and
runs of blank lines. Variables are listed by `template_variables_doc`; an undefined one is an error
(StrictUndefined), so a typo fails at once instead of sending a prompt with a hole in it.

Hashes (sha256, first 16 hex characters): `PromptTemplate.hash` of the source; `Prompt.hash` of the
template name and hash and the rendered messages with images by name (equal for equal prompts on any
machine); `Prompt.request_hash` adds the ordered image digests; `ImagePart.digest` is the image's
mode, size and raw pixel bytes. The code lives in the private `harness._prompts`.
"""

from harness._prompts import (  # noqa: F401 (re-exports)
    IMAGE_PRIORITY, ROLES, MissingImageError, PromptTemplate, TemplateError, image_digest, load_template_file,
    render_prompt, template_description, template_from_text, template_variables_doc,
)

__all__ = [
    "IMAGE_PRIORITY", "ROLES", "MissingImageError", "PromptTemplate", "TemplateError", "image_digest",
    "load_template_file", "render_prompt", "template_description", "template_from_text", "template_variables_doc",
]

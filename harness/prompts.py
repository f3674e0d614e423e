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

Rendering splits each message into text and image parts in order; text parts
are stripped of blank edges and runs of blank lines are collapsed to one.
Variables are listed by `template_variables_doc`. Undefined variables are
errors (StrictUndefined), so a typo fails at once instead of sending a prompt
with a hole in it.

Hashes (all sha256, first 16 hex characters):

- `PromptTemplate.hash`: the template source.
- `Prompt.hash`: template name, template hash and the rendered messages with
  images as ``<image:NAME>`` -- equal for equal prompts on any machine.
- `Prompt.request_hash`: ``Prompt.hash`` plus the ordered image digests.
- `ImagePart.digest`: the image's mode, size and raw pixel bytes.

This module is the plugin API for templates; the code lives in two private
helpers, `harness._prompt_template` (the template object, loading, compiling)
and `harness._prompt_render` (rendering, image digests, the variables).
"""

from harness._prompt_render import (  # noqa: F401 (re-exports)
    IMAGE_PRIORITY, image_digest, render_prompt, template_variables_doc,
)
from harness._prompt_template import (  # noqa: F401 (re-exports)
    ROLES, MissingImageError, PromptTemplate, TemplateError, load_template_file, template_description,
    template_from_text,
)

__all__ = [
    "IMAGE_PRIORITY", "ROLES", "MissingImageError", "PromptTemplate", "TemplateError", "image_digest",
    "load_template_file", "render_prompt", "template_description", "template_from_text", "template_variables_doc",
]

"""The first-party prompts plugin: the shipped prompt templates and class descriptions.

Every ``templates/*.j2`` file of this package is registered as a prompt
template named after the file (``velm.j2`` -> ``velm``), described by its
leading ``{# ... #}`` comment. ``classes/*.toml`` holds class descriptions
for the benchmarks (read by the datasets plugin).
"""

from __future__ import annotations

from importlib.resources import files

from harness.hookspecs import hookimpl
from harness.prompts import PromptTemplate, template_from_text

PACKAGE = "harness_prompts"


def shipped_templates() -> list[PromptTemplate]:
    """The templates in this package's ``templates`` folder, sorted by name."""
    folder = files(PACKAGE) / "templates"
    templates = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".j2") and entry.is_file():
            name = entry.name[: -len(".j2")]
            templates.append(
                template_from_text(name, entry.read_text(encoding="utf-8"), origin=f"{PACKAGE}:templates/{entry.name}")
            )
    return templates


@hookimpl(trylast=True)
def register_prompt_templates(register):
    for template in shipped_templates():
        register(template)

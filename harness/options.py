"""Typed, validated, documented options for gates and classifiers: pydantic models whose fields have a
type, a default and a description (`harness list --verbose`), so a typo fails naming the field.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import HarnessError


class Options(BaseModel):
    """Base class of every options model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=Options)


def validate_options(model: type[OptionsT], values: dict[str, Any] | None, owner: str) -> OptionsT:
    """Build ``model`` from ``values``; a bad value raises `HarnessError` naming ``owner`` and the field."""
    try:
        return model(**(values or {}))
    except ValidationError as error:
        known = ", ".join(model.model_fields) or "none: it takes no options"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: "
            + (f"not an option of {owner} (its options: {known})" if e["type"] == "extra_forbidden" else e["msg"])
            for e in error.errors()
        )
        raise HarnessError(f"invalid options for {owner}: {problems}") from None


def describe_options(model: type[Options]) -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) for every field, for docs and `harness list`."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = getattr(field.annotation, "__name__", str(field.annotation))
        # A default_factory field has no `default` (pydantic shows PydanticUndefined): show what the factory makes.
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append((name, annotation, default, field.description or ""))
    return rows

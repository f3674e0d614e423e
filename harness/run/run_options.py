"""The ``harness run`` flags and config-file keys, made from `RunConfig`'s fields.

From each field's `Setting` come the click option, the config-file keys (the name with dashes, and
the flag's name) and the default. Relative paths in a config file are read from its folder, so a
config can travel with its data (flags stay relative to the working directory). ``--config``,
``--gate-threshold``, ``--no-cache``, ``--resume`` and ``--retry-errors`` are declared in `harness.cli`.
"""

from __future__ import annotations

import tomllib
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, Callable

import click

from harness.classifiers import split_model_list
from harness.errors import HarnessError
from harness.run.run_config import RunConfig, Setting, default_of

#: Flags of ``harness run`` that are not `RunConfig` fields but may be set in a config file.
EXTRA_CONFIG_KEYS = frozenset({"gate-threshold", "no-cache"})
#: Flags that act on one invocation rather than describe a run: a config file cannot set them.
CLI_ONLY_FLAGS = frozenset({"config", "resume", "retry-errors"})


def _setting(item: Field) -> Setting:
    return item.metadata["setting"]


def settable_fields() -> list[Field]:
    """The fields a flag or a config key sets, in `RunConfig`'s order."""
    return [f for f in fields(RunConfig) if _setting(f).help is not None or _setting(f).config_key]


def config_keys_of(item: Field) -> list[str]:
    """A field's config-file keys: its name with dashes first, then its flag's long name when it differs."""
    keys = [item.name.replace("_", "-")]
    keys += [flag.lstrip("-") for flag in _setting(item).flag if flag.startswith("--") and flag.lstrip("-") not in keys]
    return keys


CONFIG_KEYS = frozenset(key for item in settable_fields() for key in config_keys_of(item)) | EXTRA_CONFIG_KEYS


def run_flags(command: Callable) -> Callable:
    """Decorate the ``run`` command with one click option per flagged `RunConfig` field."""
    for item in reversed([f for f in settable_fields() if _setting(f).help is not None]):
        command = _option(item)(command)
    return command


def _option(item: Field) -> Callable:
    how = _setting(item)
    names = how.flag or (f"--{item.name.replace('_', '-')}",)
    kwargs: dict[str, Any] = {"default": None, "help": how.help + _default_help(item)}
    if how.is_flag:
        kwargs.update(is_flag=True, default=False, help=how.help)
    if how.multiple:
        kwargs["multiple"] = True
    if how.choices:
        kwargs["type"] = click.Choice(how.choices)
    elif how.type is int:
        kwargs["type"] = click.IntRange(min=how.minimum) if how.minimum is not None else int
    elif how.type is float:
        kwargs["type"] = click.FloatRange(min=0.0)
    elif how.path:
        kwargs["type"] = click.Path(path_type=Path)
    if how.metavar:
        kwargs["metavar"] = how.metavar
    return click.option(*names, item.name, **kwargs)


def _default_help(item: Field) -> str:
    how = _setting(item)
    if how.default_text:
        return f" [default: {how.default_text}]"
    default = default_of(item)
    unset = default is None or default is False or (isinstance(default, (list, dict)) and not default)
    return "" if unset else f" [default: {default}]"


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Read a TOML run config; keys may use dashes or underscores; an unknown key is an error."""
    if path is None:
        return {}
    return checked_config(read_toml(path, "run config"), path)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML document at ``path``; a missing file or bad TOML is a `HarnessError` naming the file as ``what``."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise HarnessError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as error:
        raise HarnessError(f"{path}: not valid TOML ({error})") from None


def checked_config(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """A run config read from ``path`` (or a table of a larger file there): keys with dashes, checked, relative
    paths read from the file's folder; an error names ``path``."""
    config = {key.replace("_", "-"): value for key, value in table.items()}
    cli_only = sorted(set(config) & CLI_ONLY_FLAGS)
    if cli_only:
        raise HarnessError(f"{path}: {', '.join(cli_only)} can only be given on the command line "
                           f"(--{' --'.join(cli_only)}), not in a run config")
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise HarnessError(f"{path}: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(CONFIG_KEYS))}")
    for item in settable_fields():
        given = [key for key in config_keys_of(item) if key in config]
        if len(given) > 1:
            raise HarnessError(f"{path}: give {' or '.join(given)} (the same key), not both")
    return _paths_from_config_folder(config, path)


def _paths_from_config_folder(config: dict[str, Any], path: Path) -> dict[str, Any]:
    folder = path.expanduser().absolute().parent

    def anchored(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # a wrong type is reported where the key is used
        given = Path(value).expanduser()
        return str(given if given.is_absolute() else folder / given)

    for item in settable_fields():
        how = _setting(item)
        for key in (k for k in config_keys_of(item) if k in config):
            value = config[key]
            if how.path:
                config[key] = anchored(value)
            elif how.metavar == "FILE|NAME" and isinstance(value, str):
                # A bare name (no folder, no .toml) is a shipped file's name, as for the flag.
                if "/" in value or "\\" in value or value.endswith(".toml"):
                    config[key] = anchored(value)
    return config


def config_values(flags: dict[str, Any], file_config: dict[str, Any], config_path: Path | None) -> dict[str, Any]:
    """`RunConfig` keyword arguments: each flag given wins over its config-file key; others keep the default."""
    values: dict[str, Any] = {}
    for item in settable_fields():
        how = _setting(item)
        value = flags.get(item.name)
        if value in (None, ()) or (how.is_flag and value is False):
            value = next((file_config[key] for key in config_keys_of(item) if key in file_config), None)
            if value is None:
                continue
            where = f"{config_path}: {config_keys_of(item)[0]}"
        else:
            where = f"--{item.name.replace('_', '-')}"
        values[item.name] = _parsed(item, value, where)
    return values


def _parsed(item: Field, value: Any, where: str) -> Any:
    how = _setting(item)
    if how.choices and value not in how.choices:
        raise HarnessError(f"{where} {value!r} is not one of {', '.join(how.choices)}")
    if how.split_commas and isinstance(value, str):
        return split_model_list(value)
    if (how.multiple or isinstance(default_of(item), list)) and isinstance(value, (str, tuple)):
        return [value] if isinstance(value, str) else list(value)
    if how.path:
        path = Path(value).expanduser()
        return path.resolve() if how.absolute else path
    if how.type in (int, float):
        return how.type(value)
    if how.is_flag:
        return bool(value)
    if item.name == "model_options":
        return {spec: dict(options) for spec, options in value.items()}
    return value

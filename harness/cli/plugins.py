"""``harness plugins``: each loaded plugin (``builtin`` included), its distribution and version, what it
registers by kind (a registration hidden by an earlier one marked ``(overridden)``), its commands and the
lifecycle hooks it listens to; then the plugins that failed to load, with a hint. ``--json``: the same as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import click
from rich.table import Table

from harness.cli.main import out
from harness.plugins import PLUGIN_KINDS, Registry, get_registry

LIFECYCLE_HOOKS = ("harness_run_started", "harness_sample_done", "harness_run_finished")


@dataclass
class PluginInfo:
    """One loaded plugin and everything it registered, by kind."""

    name: str
    distribution: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def describe_plugins(registry: Registry) -> list[PluginInfo]:
    """A `PluginInfo` per loaded plugin, sorted by name (``builtin`` first)."""
    infos = {name: PluginInfo(name, dist, version) for name, (dist, version) in registry.plugins.items()}
    for kind in (k.table for k in PLUGIN_KINDS):
        for name, provided in getattr(registry, kind).items():
            if provided.plugin in infos:
                infos[provided.plugin].registers.setdefault(kind, []).append(name)
    for kind, name, plugin in registry.shadowed:
        if plugin in infos:
            infos[plugin].registers.setdefault(kind, []).append(f"{name} (overridden)")
    if registry.manager is not None:
        _add_commands_and_hooks(registry, infos)
    for info in infos.values():
        info.registers = {kind: sorted(names) for kind, names in info.registers.items()}
    return sorted(infos.values(), key=lambda i: (i.name != "builtin", i.name))


def _add_commands_and_hooks(registry: Registry, infos: dict[str, PluginInfo]) -> None:
    pm = registry.manager
    for impl in pm.hook.register_commands.get_hookimpls():
        info = infos.get(impl.plugin_name)
        if info is None:
            continue
        scratch = click.Group("scratch")  # a throwaway group: see what the plugin adds, touch nothing real
        try:
            impl.function(cli=scratch)
        except Exception as error:  # reported, not raised: listing plugins must work with a broken one
            info.problems.append(f"register_commands failed: {type(error).__name__}: {error}")
        if scratch.commands:
            info.registers["commands"] = list(scratch.commands)
    for name, plugin in pm.list_name_plugin():  # not get_plugins(): it needs hashable plugin objects
        if plugin is not None and name in infos:
            callers = pm.get_hookcallers(plugin) or []
            infos[name].hooks = sorted(c.name for c in callers if c.name in LIFECYCLE_HOOKS)


#: How the table names each kind ("cost matrices", not the registry's ``costs``); --json keeps the registry's names.
_KIND_LABELS = {kind.table: kind.title.lower() for kind in PLUGIN_KINDS}


def _summary(info: PluginInfo) -> str:
    parts = [f"{_KIND_LABELS.get(kind, kind)}: {', '.join(names)}" for kind, names in info.registers.items()]
    if info.hooks:
        parts.append(f"hooks: {', '.join(info.hooks)}")
    parts += [f"[red]{problem}[/]" for problem in info.problems]
    return "\n".join(parts) or "(nothing)"


@click.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def plugins_command(as_json: bool) -> None:
    """List installed plugins: distribution, version, what each registers, and load failures."""
    registry = get_registry()
    infos = describe_plugins(registry)
    if as_json:
        payload: dict[str, Any] = {
            "plugins": [asdict(info) for info in infos],
            "failures": [asdict(failure) for failure in registry.failures],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="Plugins", title_justify="left")
    for column in ("plugin", "distribution", "version", "registers"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.distribution, info.version, _summary(info))
    out.print(table)
    if registry.failures:
        failed = Table(title="Failed to load", title_justify="left")
        for column in ("plugin", "distribution", "error", "hint"):
            failed.add_column(column, overflow="fold")
        for failure in registry.failures:
            failed.add_row(failure.plugin, failure.distribution, failure.error, failure.hint)
        out.print(failed)

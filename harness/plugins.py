"""The plugin registry: everything a run uses arrives through a hook of :mod:`harness.hookspecs`,
from the ``harness`` entry-point group, the core's own built-ins included (``trylast``, so a plugin may
override them by name). A plugin that fails to import is recorded in `Registry.failures` with a pip
hint and the others still load; one implementing a hook that does not exist fails loudly.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from harness import __version__, hookspecs
from harness.errors import PluginError, UnknownNameError

ENTRY_POINT_GROUP = "harness"
BUILTIN_PLUGIN = "builtin"
BUILTIN_MODULE = "harness.builtin"


@dataclass(frozen=True)
class Provided:
    """Something a plugin registered, with where it came from."""

    name: str
    obj: Any
    plugin: str
    version: str


@dataclass(frozen=True)
class NamedFile:
    """A file a plugin registered under a name: a decision policy, a cost matrix or a class file."""

    name: str
    path: Path

    @property
    def description(self) -> str:
        """What `harness list` shows for it: where the file is."""
        return str(self.path)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded, and what the user can do about it."""

    plugin: str
    distribution: str
    error: str
    hint: str


@dataclass
class Registry:
    """All registered things by kind, each keyed by name."""

    benchmarks: dict[str, Provided] = field(default_factory=dict)
    gates: dict[str, Provided] = field(default_factory=dict)
    classifiers: dict[str, Provided] = field(default_factory=dict)
    templates: dict[str, Provided] = field(default_factory=dict)
    writers: dict[str, Provided] = field(default_factory=dict)
    analyses: dict[str, Provided] = field(default_factory=dict)
    policies: dict[str, Provided] = field(default_factory=dict)  # of `NamedFile`s
    costs: dict[str, Provided] = field(default_factory=dict)  # of `NamedFile`s
    class_files: dict[str, Provided] = field(default_factory=dict)  # of `NamedFile`s
    executors: dict[str, Provided] = field(default_factory=dict)  # `Run` and its subclasses
    failures: list[PluginFailure] = field(default_factory=list)
    #: (kind, name, plugin) of registrations hidden by an earlier one of the same name.
    shadowed: list[tuple[str, str, str]] = field(default_factory=list)
    #: plugin name -> (distribution, version)
    plugins: dict[str, tuple[str, str]] = field(default_factory=dict)
    manager: pluggy.PluginManager | None = None

    def get(self, kind: str, name: str) -> Provided:
        """Look one thing up by kind and name, with a helpful error naming what exists."""
        table: dict[str, Provided] = getattr(self, kind)
        if name in table:
            return table[name]
        known = ", ".join(sorted(table)) or "none"
        hint = ""
        failed = [f.plugin for f in self.failures]
        if failed:
            hint = f" (plugins that failed to load: {', '.join(failed)}; see `harness plugins`)"
        raise UnknownNameError(f"unknown {_KIND_OF_TABLE[kind].singular} {name!r}; registered: {known}{hint}")


@dataclass(frozen=True)
class PluginKind:
    """One kind of thing plugins register: its registry table, hook, labels and naming attribute."""

    table: str  # the Registry attribute, e.g. "gates"
    hook: str  # the hookspec that registers it
    singular: str  # "gate", in messages
    title: str  # "Gates", in `harness list`
    name_attr: str = "name"  # the attribute naming a registered object
    #: True: ``register(name, path)`` registers a file under a name (stored as a `NamedFile`),
    #: instead of ``register(obj)`` with an object that names itself.
    files: bool = False


#: The kinds, in display order: the one table the registry, `harness list`, `harness plugins` and
#: `harness.testing.plugin_of` read.
PLUGIN_KINDS: tuple[PluginKind, ...] = (
    PluginKind("benchmarks", "register_benchmarks", "benchmark", "Benchmarks"),
    PluginKind("gates", "register_gates", "gate", "Gates"),
    PluginKind("classifiers", "register_classifiers", "classifier", "Classifiers", name_attr="plugin"),
    PluginKind("templates", "register_prompt_templates", "template", "Prompt templates"),
    PluginKind("writers", "register_result_writers", "writer", "Result writers"),
    PluginKind("analyses", "register_analyses", "analysis", "Analyses"),
    PluginKind("policies", "register_policies", "policy", "Decision policies", files=True),
    PluginKind("costs", "register_cost_matrices", "cost matrix", "Cost matrices", files=True),
    PluginKind("class_files", "register_class_files", "class file", "Class files", files=True),
    PluginKind("executors", "register_executors", "executor", "Executors"),
)
_KIND_OF_TABLE = {kind.table: kind for kind in PLUGIN_KINDS}


def _registered(kind: str, args: tuple[Any, ...], plugin: str, hook: str) -> tuple[str, Any]:
    """(name, object) of one ``register(...)`` call of a registration hook, or a `PluginError` saying what
    was expected."""
    spec = _KIND_OF_TABLE[kind]
    if len(args) != (2 if spec.files else 1):
        form = "register(name, path)" if spec.files else "register(obj)"
        raise PluginError(f"plugin {plugin!r} called {hook}'s register with {len(args)} argument(s); expected {form}")
    if not spec.files:
        name = getattr(args[0], spec.name_attr, None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"a registered {spec.singular} has no {spec.name_attr!r} attribute: {args[0]!r}")
        return name, args[0]
    name, path = args
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} registered a {spec.singular} with name {name!r}; "
                          "expected register(name, path)")
    if not isinstance(path, (str, os.PathLike)):
        raise PluginError(f"plugin {plugin!r} registered {spec.singular} {name!r} with {path!r}, not a file path "
                          "(a file inside a zipped package cannot be read; install the package unzipped)")
    return name, NamedFile(name, Path(path))


def _pip_hint(error: BaseException, distribution: str, plugin_module: str = "") -> str:
    if isinstance(error, ModuleNotFoundError) and error.name:
        missing = error.name.split(".")[0]
        # The plugin's own module is missing: a broken install or a typo in its
        # entry point. `pip install <module>` would fetch an unrelated package.
        if missing != plugin_module.split(".")[0]:
            return f"pip install {missing}  (or reinstall {distribution} with its extras)"
    return f"reinstall {distribution}, or uninstall it to silence this message"


def load_registry(extra_plugins: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> Registry:
    """Load the core's own plugin, the entry-point plugins (unless ``entry_points`` is False) and then
    ``extra_plugins``, (name, plugin) pairs (how tests register one), into a fresh registry.

    The core's plugin (`harness.builtin`) is found through its entry point too, so this module imports
    none of what it registers.
    """
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    registry = Registry(manager=pm)
    builtin = _builtin_entry_point()
    pm.register(builtin.load(), name=BUILTIN_PLUGIN)
    registry.plugins[BUILTIN_PLUGIN] = (builtin.dist.name if builtin.dist else "anomaly-harness", __version__)

    if entry_points:
        # Each name and version reads and parses the distribution's METADATA file: once per distribution
        # (the core's own has 17 entry points), not per entry point.
        named: dict[int, tuple[str, str]] = {}
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.dist is not None and id(ep.dist) not in named:
                named[id(ep.dist)] = (ep.dist.name, ep.dist.version)
            dist, version = named[id(ep.dist)] if ep.dist is not None else ("unknown", "unknown")
            if pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as error:  # any import failure must not take the others down
                registry.failures.append(
                    PluginFailure(ep.name, dist, f"{type(error).__name__}: {error}", _pip_hint(error, dist, ep.module))
                )
                continue
            _register_checked(pm, plugin, ep.name, dist)
            registry.plugins[ep.name] = (dist, version)

    for name, plugin in extra_plugins:
        _register_checked(pm, plugin, name, "local")
        registry.plugins[name] = ("local", "0")

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        # pluggy's error carries the plugin object, not the name it was registered under.
        raise PluginError(
            f"plugin {pm.get_name(error.plugin)!r} implements a hook the harness does not define: {error}. "
            "Check the spelling against harness/hookspecs.py."
        ) from error

    for kind in PLUGIN_KINDS:
        _collect(registry, kind.table, getattr(pm.hook, kind.hook))
    return registry


def _builtin_entry_point() -> importlib.metadata.EntryPoint:
    """The entry point of the core's own plugin; a missing one means an install from before it existed."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=BUILTIN_PLUGIN):
        if ep.value == BUILTIN_MODULE:
            return ep
    raise PluginError(f"the harness's own plugin (entry point {BUILTIN_PLUGIN} = {BUILTIN_MODULE}) is not installed: "
                      "reinstall anomaly-harness (make setup, or pip install -e .)")


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str, dist: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as error:
        raise PluginError(f"plugin {name!r} (from {dist}) is invalid: {error}") from error
    except ValueError as error:  # pluggy: this name or this plugin object is already registered
        raise PluginError(f"plugin {name!r} (from {dist}) cannot be registered: {error}") from error


def _collect(registry: Registry, kind: str, hook: Any) -> None:
    """Call each implementation of a registration hook, remembering who registered what.

    Implementations are called in pluggy's call order (later registrations and
    ``tryfirst`` first, ``trylast`` built-ins last); the first name wins.
    """
    table: dict[str, Provided] = getattr(registry, kind)
    for impl in reversed(hook.get_hookimpls()):
        plugin_name = impl.plugin_name
        version = registry.plugins.get(plugin_name, ("unknown", "unknown"))[1]

        def register(*args: Any, _plugin: str = plugin_name, _version: str = version) -> None:
            name, obj = _registered(kind, args, _plugin, hook.name)
            if name in table:
                registry.shadowed.append((kind, name, _plugin))
                return
            table[name] = Provided(name, obj, _plugin, _version)

        kwargs = {arg: register for arg in impl.argnames}
        try:
            impl.function(**kwargs)
        except PluginError:
            raise
        except Exception as error:
            raise PluginError(f"plugin {plugin_name!r} failed in {hook.name}: {type(error).__name__}: {error}") from error


_cached: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _cached
    if _cached is None:
        _cached = load_registry()
    return _cached


def registered_class_file(name: str) -> Path | None:
    """The path of the class file a plugin registered as ``name`` (``register_class_files``), else None:
    how a benchmark finds its shipped descriptions (the form is `harness.run.class_file`'s)."""
    provided = get_registry().class_files.get(name)
    return provided.obj.path if provided is not None else None


def set_registry(registry: Registry | None) -> None:
    """Replace (or with None, reset) the process-wide registry; for tests and embedding."""
    global _cached
    _cached = registry

"""Plugins made for a test: a scripted classifier, a plugin object from parts, registries for one test.

- `scripted_classifier`: a classifier whose answers a test scripts (text,
  `Response`, or an exception to raise), registered as a plugin.
- `plugin_of`: a plugin object registering the classes and objects you give it.
- `registry_with`: a registry with extra plugins, installed process-wide for
  the duration of a ``with`` block.
- `PluginRegistrar`: register and unregister plugins one at a time inside a
  test (the ``harness_plugins`` fixture).
- `install_offline`: pip-installs plugin projects into a folder, offline, the
  way a user's ``pip install`` would (for testing packaging and entry points).

Part of the test kit; import these from `harness.testing`.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import tempfile
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Union

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.hookspecs import hookimpl
from harness import plugins as _plugins
from harness.plugins import PLUGIN_KINDS, Registry, load_registry, set_registry
from harness.types import Prompt, Response

__all__ = [
    "PluginObject", "PluginRegistrar", "Script", "ScriptResult", "install_offline", "plugin_of", "registry_with",
    "scripted_classifier",
]

ScriptResult = Union[str, Response, BaseException]
Script = Callable[[Prompt], Union[ScriptResult, Awaitable[ScriptResult]]]


def scripted_classifier(
    script: Script,
    plugin: str = "scripted",
    capabilities: Capabilities = Capabilities(),
    transient: tuple[type[BaseException], ...] = (),
) -> tuple[type[Classifier], object]:
    """A classifier class answering with ``script(prompt)``, and a plugin registering it.

    ``script`` returns text, a `Response`, or an exception (which is raised);
    exceptions of the ``transient`` types are declared retryable. Every prompt
    received is appended to ``ScriptedClassifier.prompts``.
    """

    class ScriptedClassifier(Classifier):
        description = "answers as a test scripts it"
        Options = ClassifierOptions
        prompts: list[Prompt] = []

        async def classify(self, prompt: Prompt) -> Response:
            type(self).prompts.append(prompt)
            result = script(prompt)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, BaseException):
                raise result
            return result if isinstance(result, Response) else Response(text=str(result))

        def should_retry(self, error: BaseException) -> bool:
            return isinstance(error, transient)

        def is_deterministic(self) -> bool:
            return False  # a script may answer differently each time: never cached unless asked

    ScriptedClassifier.plugin = plugin
    ScriptedClassifier.capabilities = capabilities
    ScriptedClassifier.prompts = []

    @hookimpl
    def register_classifiers(register):
        register(ScriptedClassifier)

    module = types.SimpleNamespace(register_classifiers=register_classifiers)
    return ScriptedClassifier, module


@contextmanager
def registry_with(*plugins: tuple[str, Any], entry_points: bool = True) -> Iterator[Registry]:
    """Install a registry with ``plugins`` ((name, plugin) pairs) for the block, then restore."""
    previous = _plugins._cached
    registry = load_registry(extra_plugins=plugins, entry_points=entry_points)
    set_registry(registry)
    try:
        yield registry
    finally:
        set_registry(previous)


# Registration hooks by keyword of `plugin_of`, and whether the kind registers (name, path) pairs.
_HOOK_OF_KIND = {kind.table: kind.hook for kind in PLUGIN_KINDS}
_FILE_KINDS = {kind.table: kind.files for kind in PLUGIN_KINDS}


def plugin_of(
    *,
    benchmarks: Iterable[Any] = (),
    gates: Iterable[Any] = (),
    classifiers: Iterable[Any] = (),
    templates: Iterable[Any] = (),
    writers: Iterable[Any] = (),
    analyses: Iterable[Any] = (),
    policies: Mapping[str, str | Path] | None = None,
    costs: Mapping[str, str | Path] | None = None,
    class_files: Mapping[str, str | Path] | None = None,
    commands: Iterable[Any] = (),
) -> object:
    """A plugin object registering exactly what it is given (only the hooks it needs are defined).

    ``plugin_of(classifiers=[MyClassifier], benchmarks=[TinyBenchmark(root)])``; files are given
    as name -> path: ``plugin_of(policies={"strict": path}, class_files={"mvtec-ac": path})``.
    """
    given = {"benchmarks": list(benchmarks), "gates": list(gates), "classifiers": list(classifiers),
             "templates": list(templates), "writers": list(writers), "analyses": list(analyses),
             "policies": list((policies or {}).items()), "costs": list((costs or {}).items()),
             "class_files": list((class_files or {}).items())}
    hooks: dict[str, Any] = {}
    for kind, things in given.items():
        if things:
            hooks[_HOOK_OF_KIND[kind]] = _registering(_HOOK_OF_KIND[kind], things, _FILE_KINDS[kind])
    command_list = list(commands)
    if command_list:

        @hookimpl
        def register_commands(cli):
            for command in command_list:
                cli.add_command(command)

        hooks["register_commands"] = register_commands
    return PluginObject(**hooks)


class PluginObject:
    """A plugin made of hook implementations given as attributes (hashable, unlike a SimpleNamespace)."""

    def __init__(self, **hooks: Any):
        self.__dict__.update(hooks)

    def __repr__(self) -> str:
        return f"PluginObject({', '.join(sorted(self.__dict__))})"


def _registering(hook_name: str, things: list[Any], named_files: bool) -> Callable[..., None]:
    def register_all(register):
        for thing in things:
            if named_files:
                register(*thing)  # (name, path)
            else:
                register(thing)

    register_all.__name__ = hook_name
    return hookimpl(register_all)


class PluginRegistrar:
    """Registers plugins for the length of one test, then puts the previous registry back.

    Each `register` rebuilds the process-wide registry (entry points plus every
    plugin registered so far), so code that calls `harness.plugins.get_registry`
    sees it; `unregister` takes one out again. Use it as a context manager, or
    through the ``harness_plugins`` pytest fixture.
    """

    def __init__(self, entry_points: bool = True):
        self.entry_points = entry_points
        self._plugins: dict[str, object] = {}
        self._counter = 0  # default names are never reused, even after unregister
        self._previous: Registry | None = None
        self.registry: Registry | None = None

    def __enter__(self) -> "PluginRegistrar":
        self._previous = _plugins._cached
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._plugins.clear()
        self.registry = None
        set_registry(self._previous)

    def register(self, plugin: object, name: str | None = None) -> Registry:
        """Add ``plugin`` under ``name`` (default: a fresh ``test-plugin-N``); returns the new registry."""
        if name is None:
            self._counter += 1
            name = f"test-plugin-{self._counter}"
        if name in self._plugins:
            raise ValueError(f"a plugin named {name!r} is already registered in this test")
        self._plugins[name] = plugin
        try:
            return self._reload()
        except Exception:
            del self._plugins[name]
            raise

    def unregister(self, name: str) -> Registry:
        """Remove a plugin registered earlier in this test; returns the new registry."""
        if name not in self._plugins:
            raise KeyError(f"no plugin named {name!r} was registered in this test")
        del self._plugins[name]
        return self._reload()

    def _reload(self) -> Registry:
        self.registry = load_registry(extra_plugins=list(self._plugins.items()), entry_points=self.entry_points)
        set_registry(self.registry)
        return self.registry


def install_offline(*projects: str | Path, target: str | Path) -> Path:
    """``pip install`` local projects (folders with a pyproject.toml) into ``target``, offline.

    Nothing is downloaded: no index, no dependencies, no build isolation (the
    projects' build backend, e.g. setuptools, must be installed already). Each
    project is copied first, so the build leaves nothing in its source folder.
    Put ``target`` on ``sys.path`` (or ``PYTHONPATH``) and entry-point discovery
    finds the installed distributions. Raises RuntimeError with pip's output on failure.
    """
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix="harness-install-") as scratch:
        copies = []
        for project in map(Path, projects):
            if not (project / "pyproject.toml").is_file():
                raise ValueError(f"{project}: not a project folder (no pyproject.toml)")
            copy = Path(scratch) / project.resolve().name
            shutil.copytree(project, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            copies.append(str(copy))
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                   "--disable-pip-version-check", "--no-cache-dir", "--quiet", "--target", str(target), *copies]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return target

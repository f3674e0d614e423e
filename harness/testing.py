"""Helpers for testing the harness and plugins written for it.

- `scripted_classifier`: a classifier whose answers a test scripts (text,
  `Response`, or an exception to raise), registered as a plugin.
- `registry_with`: a registry with extra plugins, installed process-wide for
  the duration of a ``with`` block.
"""

from __future__ import annotations

import inspect
import types
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator, Union

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.hookspecs import hookimpl
from harness import plugins as _plugins
from harness.plugins import Registry, load_registry, set_registry
from harness.types import Prompt, Response

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

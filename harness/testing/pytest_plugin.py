"""The harness's pytest plugin: the test kit (`harness.testing`) as fixtures.

Installed with the harness (entry point ``harness`` in the ``pytest11``
group), so a plugin's own test suite gets these fixtures with no conftest:

- ``harness_plugins``: a `harness.testing.PluginRegistrar`; ``register(plugin,
  name=None)`` installs a registry with that plugin for this test only
  (``unregister(name)`` takes it out again); the previous registry comes back
  after the test.
- ``harness_tiny_benchmark``: a `harness.testing.TinyBenchmark` whose images
  are drawn once per session (``.root`` is the folder; it needs no ``--data-root``).
- ``harness_loopback``: a started `harness.testing.loopback.LoopbackServer` (a fake
  OpenAI and Anthropic API on 127.0.0.1) that answers ``ok`` until the test sets
  ``harness_loopback.responder``; stopped after the test.

The conformance check is a function, not a fixture:
``harness.testing.conformance.check_classifier(MyClassifier, ...).raise_for_failures()``.

Imports of the harness happen inside the fixtures, so merely having the
harness installed costs other projects' test sessions nothing (``harness.testing``
imports its parts on first use). ``harness.pytest_plugin`` re-exports these fixtures, for
compatibility.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest


@pytest.fixture
def harness_plugins() -> Iterator[Any]:
    """Register plugins for one test: ``harness_plugins.register(plugin, name=None)`` returns the registry."""
    from harness.testing.plugin_helpers import PluginRegistrar

    with PluginRegistrar() as registrar:
        yield registrar


@pytest.fixture(scope="session")
def harness_tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny benchmark (2 categories, 4 defect classes, 20 images), drawn once per session."""
    from harness.testing.tiny_benchmark import TinyBenchmark, write_tiny_benchmark

    return TinyBenchmark(write_tiny_benchmark(tmp_path_factory.mktemp("harness-tiny-benchmark")))


@pytest.fixture
def harness_loopback() -> Iterator[Any]:
    """A started loopback OpenAI/Anthropic server; set ``.responder`` to script it (see `harness.testing.loopback`)."""
    from harness.testing.loopback import LoopbackServer

    with LoopbackServer("ok", max_seconds=120) as server:
        yield server
    if server.errors:  # a responder that raised is a bug in the test: say so
        raise AssertionError(f"loopback responder raised: {server.errors[0]!r}")

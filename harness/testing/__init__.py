"""The test kit for the harness and for plugins written for it.

- `scripted_classifier`: a classifier whose answers a test scripts (text,
  `Response`, or an exception to raise), registered as a plugin.
- `plugin_of`: a plugin object registering the classes and objects you give it.
- `registry_with`: a registry with extra plugins, installed process-wide for
  the duration of a ``with`` block.
- `PluginRegistrar`: register and unregister plugins one at a time inside a
  test (the ``harness_plugins`` fixture).
- `write_tiny_benchmark` / `TinyBenchmark`: a 20-image benchmark drawn in 50 ms,
  with `TINY_TEMPLATE` and `tiny_prompt` (one rendered prompt of it).
- `LoopbackServer` (from `harness.testing.loopback`): a fake OpenAI /
  Anthropic API on 127.0.0.1; `harness.testing.loopback_faults.fault_mix` makes
  it fail a seeded share of requests with 429, 500, 503, 529 and dropped connections.
- `check_classifier` (from `harness.testing.conformance`): runs a classifier
  plugin through the contract.
- `install_offline`: pip-installs plugin projects into a folder, offline, the
  way a user's ``pip install`` would (for testing packaging and entry points).

The same helpers are pytest fixtures through the ``harness`` pytest plugin
(`harness.testing.pytest_plugin`), which pytest loads by itself once the
harness is installed. `harness.testing.browser` drives a headless Chromium
(the report's browser test).

Modules: `plugin_helpers`, `tiny_benchmark`, `loopback` (with
`loopback_script`, `loopback_openai`, `loopback_anthropic`, `loopback_server`)
and `loopback_faults`, `conformance` (with `conformance_report`,
`conformance_context`, `conformance_checks`, `conformance_wire`),
`pytest_plugin` and `browser`. The old flat modules (``harness.loopback``,
``harness.conformance``, ``harness.tiny_benchmark``, ``harness.pytest_plugin``,
...) are kept as re-exports for compatibility.

Each name below is imported on first use, so that importing one part of the
kit (the pytest plugin in every test session, the loopback server in its own
process) does not load the others.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module of the kit that defines it.
_HOMES = {
    "PluginObject": "plugin_helpers",
    "PluginRegistrar": "plugin_helpers",
    "Script": "plugin_helpers",
    "ScriptResult": "plugin_helpers",
    "install_offline": "plugin_helpers",
    "plugin_of": "plugin_helpers",
    "registry_with": "plugin_helpers",
    "scripted_classifier": "plugin_helpers",
    "TINY_TEMPLATE": "tiny_benchmark",
    "TinyBenchmark": "tiny_benchmark",
    "tiny_prompt": "tiny_benchmark",
    "write_tiny_benchmark": "tiny_benchmark",
    "LoopbackServer": "loopback",
    "check_classifier": "conformance",
}

__all__ = [
    "LoopbackServer", "PluginObject", "PluginRegistrar", "TINY_TEMPLATE", "TinyBenchmark", "check_classifier",
    "install_offline", "plugin_of", "registry_with", "scripted_classifier", "tiny_prompt", "write_tiny_benchmark",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'harness.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})

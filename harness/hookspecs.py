"""The plugin API: every hook a plugin may implement (docs/plugins.md says more).

A plugin is a module (or object) with functions decorated by `hookimpl` whose names are hooks below,
found through the ``harness`` entry-point group of its distribution. Registration hooks receive a
``register`` callable, called once per thing provided; lifecycle hooks observe a run, never change it.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_benchmarks(register):
    """Register benchmarks: ``register(benchmark)`` with a `harness.datasets.Benchmark`."""


@hookspec
def register_gates(register):
    """Register detector gates: ``register(gate_class)`` with a `harness.gates.Gate` subclass."""


@hookspec
def register_classifiers(register):
    """Register classifier backends: ``register(classifier_class)`` with a `harness.classifiers.Classifier`
    subclass, whose ``plugin`` is the prefix of the model specs it serves (``openai:gpt-4o``)."""


@hookspec
def register_prompt_templates(register):
    """Register prompt templates: ``register(template)`` with a `harness.prompts.PromptTemplate`."""


@hookspec
def register_result_writers(register):
    """Register extra result formats (``harness run --output-format NAME``): ``register(writer)`` with a
    `harness.results.ResultWriter`."""


@hookspec
def register_analyses(register):
    """Register analyses: ``register(analysis)`` with a `harness.analyses.Analysis`, which reads the
    finished run once and writes the run.json section named by its ``name``."""


@hookspec
def register_policies(register):
    """Register decision policies (``--policy NAME``): ``register(name, path)`` with a policy TOML file
    (the form is `harness.scoring.decisions`'s)."""


@hookspec
def register_cost_matrices(register):
    """Register cost matrices (``--costs NAME``): ``register(name, path)`` with a cost-matrix TOML file."""


@hookspec
def register_class_files(register):
    """Register class files: ``register(name, path)`` with a class-description TOML file (the form of a
    user's class file, `harness.run.class_file`); a benchmark reads the one of its name."""


@hookspec
def register_executors(register):
    """Register executors (``harness run --executor NAME``): ``register(executor_class)`` with a subclass of
    `harness.run.runner.Run` (the core's ``local``) whose ``name`` the flag names."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``harness`` command group: ``cli.add_command(...)``."""


@hookspec
def harness_run_started(run):
    """Called once when a run starts, with the run dict (``config`` and ``provenance``, as run.json will hold them)."""


@hookspec
def harness_sample_done(record):
    """Called after each record (one sample, one model) is written, with the record dict."""


@hookspec
def harness_run_finished(run, run_dir):
    """Called once when a run has finished and ``run.json`` holds its metrics."""

"""The ``harness`` command line: the group and ``run``/``list``/``leaderboard`` (`harness.cli.main`), and the
other core commands, one module each (report, compare, act, score, plugins, cache, classes), which
the core's own plugin registers through ``register_commands`` (`harness.cli.commands`).
"""

from harness.cli.main import cli, main

__all__ = ["cli", "main"]

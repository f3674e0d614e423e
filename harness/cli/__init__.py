"""The ``harness`` command line: the group and ``run``/``list``/``leaderboard`` (`harness.cli.main`), and
one module per other core command (plugins) and the decisions tables `run` prints, which the core's own plugin
(`harness.builtin`) registers through ``register_commands`` as any plugin would.
"""

from harness.cli.main import cli, main

__all__ = ["cli", "main"]

"""Core commands that live in their own modules, one feature per module.

Each module defines a standalone ``click`` command; the core's own plugin
(`harness.builtin`) adds them to the ``harness`` group through the ``register_commands`` hook,
exactly as a third-party plugin adds its commands. A command module must not import ``harness.cli`` (that
would be circular): it makes its own ``rich`` consoles and raises
``HarnessError`` for user errors, which ``harness.cli.main`` turns into exit code 2.
"""

from __future__ import annotations

import click


def core_commands() -> list[click.Command]:
    """The commands of this package, in `harness --help` order (imported here, at registration)."""
    from harness.cli.act import act
    from harness.cli.cache import cache
    from harness.cli.classes import classes
    from harness.cli.compare import compare
    from harness.cli.plugins import plugins_command
    from harness.cli.report import report
    from harness.cli.score import score

    return [plugins_command, report, compare, act, score, cache, classes]

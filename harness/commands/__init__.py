"""Core commands that live in their own modules, one feature per module.

Each module defines a standalone ``click`` command; ``harness.cli`` adds it to
the ``harness`` group. A command module must not import ``harness.cli`` (that
would be circular): it makes its own ``rich`` consoles and raises
``HarnessError`` for user errors, which ``harness.cli.main`` turns into exit code 2.
"""

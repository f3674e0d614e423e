"""First-party plugin: ``harness sweep SWEEP.toml``, the cross product of run settings as ordinary runs.

A tool around runs rather than part of one: each cell of a sweep is a run made by the core's `Run`
(`harness.run.runner`) from a config read by the core's run-config reader, in a run folder whose id
comes from the cell, so a second sweep skips finished cells and resumes unfinished ones. Registered
through the ``harness`` entry-point group exactly as a third-party plugin would be.

Modules: `sweep_file` (reading the file; the cells and their ids), `execute` (a cell's state; running
cells here or in child processes) and `command` (the click command, the summary table).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, not the trylast of the other first-party hooks: the CLI adds commands in call order and
# the last one added under a name wins, so a third-party `sweep` command still replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness sweep``."""
    from harness_sweep.command import sweep  # imported at registration: it imports the CLI

    cli.add_command(sweep)

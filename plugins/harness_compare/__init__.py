"""``harness compare RUN_A RUN_B``: a paired comparison of two finished runs.

A tool on top of the harness, not part of a run: it reads two run folders and nothing else, so it
is a plugin, registered through the ``harness`` entry-point group as a third-party one would be.

Modules: `paired` (the comparison: paired bootstrap, exact McNemar test, changed images) and
`command` (the click command and its tables).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, like the core's own commands: for commands the LAST registration of a name wins
# (`harness.cli.main` adds them in call order), so a plugin's own `compare` command replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness compare``."""
    # Imported here, at registration: the command imports the CLI, which imports the registry.
    from harness_compare.command import compare

    cli.add_command(compare)

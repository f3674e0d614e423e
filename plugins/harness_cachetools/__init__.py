"""``harness cache info`` and ``clear``: what the response cache holds, removing entries from it.

A tool on top of the harness, not part of a run: runs read and write the response cache
(`harness.run.cache`, which stays in the core); this plugin only looks into it and deletes from it
through that class, so it is a plugin, registered through the ``harness`` entry-point group as a
third-party one would be.

Modules: `inventory` (what the cache holds, per model and endpoint; which entries a filter selects)
and `command` (the click command).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, unlike the other hooks of first-party plugins: for commands the LAST registration of a name
# wins (`harness.cli.main` adds them in call order), so a plugin's own `cache` command replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness cache`` (``info``, ``clear``)."""
    # Imported here, at registration: the command imports the CLI, which imports the registry.
    from harness_cachetools.command import cache

    cli.add_command(cache)

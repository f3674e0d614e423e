"""``harness classes init`` and ``check``: write a starting class file for a data root, check one against it.

A tool on top of the harness, not part of a run: it asks a benchmark through the registry what a data
root holds and reads the class-file form that runs use (`harness.run.class_file`, which stays in the
core), so it is a plugin, registered through the ``harness`` entry-point group as a third-party one would be.
"""

from harness.hookspecs import hookimpl


# tryfirst, unlike the other hooks of first-party plugins: for commands the LAST registration of a name
# wins (`harness.cli.main` adds them in call order), so a plugin's own `classes` command replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness classes`` (``init``, ``check``)."""
    # Imported here, at registration, not with the plugin: every harness command loads every plugin.
    from harness_classfiles.command import classes

    cli.add_command(classes)

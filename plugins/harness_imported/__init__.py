"""``harness score``: predictions made outside the harness (a VELM-format file, JSON lines), scored as a run.

A tool on top of the harness, not part of a run: it reads the benchmark through the registry and writes
the run files (run.json, samples.jsonl) that `harness report`, `compare` and the leaderboard read, so
it is a plugin, registered through the ``harness`` entry-point group as a third-party one would be.
"""

from harness.hookspecs import hookimpl


# tryfirst, unlike the other hooks of first-party plugins: for commands the LAST registration of a name
# wins (`harness.cli.main` adds them in call order), so a plugin's own `score` command replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness score``."""
    # Imported here, at registration: the command imports the CLI, which imports the registry.
    from harness_imported.command import score

    cli.add_command(score)

"""``harness act RUN_ID``: apply a decision policy (and the VELM paper's Table 4 experiment) to a finished run.

A tool on top of the harness, not part of a run: a run with a policy computes its decisions itself (the
core's `harness.scoring.decision_report`, a built-in analysis); this command reads a finished run folder
and writes ``decisions.json`` / ``table4.json`` beside it, so it is a plugin, registered through the
``harness`` entry-point group as a third-party one would be.

Module: `command` (the click command and its Table 4 table; the decisions tables are the core's,
`harness.cli.decision_tables`, which ``harness run`` prints too).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, like the core's own commands: for commands the LAST registration of a name wins
# (`harness.cli.main` adds them in call order), so a plugin's own `act` command replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness act``."""
    # Imported here, at registration: the command imports the CLI's modules, which import the registry.
    from harness_act.command import act

    cli.add_command(act)

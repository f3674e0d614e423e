"""First-party plugin: ``harness report``, one self-contained HTML page about finished runs.

A plugin rather than part of the core because it only reads finished run folders (run.json,
samples.jsonl) and the images they name, files any tool may read; it reads them with the core's
readers (`harness.run`, `harness.scoring`), which it may use as it ships with them. Registered
through the ``harness`` entry-point group exactly as a third-party plugin would be.

Modules: `report` (`build_report`, the whole page), `data` (reading runs), `svg` (plots), `gallery`
(sample cards and thumbnails), `render` (the Jinja2 page; templates in ``templates/``) and `command`
(the click command).
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, not the trylast of the other first-party hooks: the CLI adds commands in call order and
# the last one added under a name wins, so a third-party `report` command still replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness report``."""
    from harness_report.command import report  # imported at registration: it imports the CLI

    cli.add_command(report)

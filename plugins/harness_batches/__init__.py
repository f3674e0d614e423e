"""First-party plugin: ``harness batches RUN_ID``, the provider batches of a run made with ``--batch``.

A tool around runs: it reads the run folder's ledger (``batches.jsonl``, `harness.run.batch_mode`),
asks each provider for the state of each batch through the model's own classifier (its batch
protocol, `harness.batches`), and with ``--cancel`` cancels the batches still running. Registered
through the ``harness`` entry-point group exactly as a third-party plugin would be.
"""

from harness.hookspecs import hookimpl

__version__ = "0.1.0"


# tryfirst, as harness_sweep: a third-party `batches` command registered later still replaces this one.
@hookimpl(tryfirst=True)
def register_commands(cli):
    """Add ``harness batches``."""
    from harness_batches.command import batches  # imported at registration: it imports the CLI

    cli.add_command(batches)

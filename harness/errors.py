"""Exceptions a user can act on: the CLI prints a `HarnessError`'s message and exits with code 2."""


class HarnessError(Exception):
    """A user-facing error: bad input, bad configuration, unknown names."""

    exit_code = 2


class DataLayoutError(HarnessError):
    """A data root is missing or not laid out as the dataset expects."""


class UnknownNameError(HarnessError):
    """A benchmark, gate, classifier or template name that nothing registered."""


class PluginError(HarnessError):
    """A plugin failed to load or declared an invalid hook."""


class BadInputError(Exception):
    """One sample's input is unusable (an unreadable image): not a `HarnessError`, the run records
    ``bad_input`` and goes on."""

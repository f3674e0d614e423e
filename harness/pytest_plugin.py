"""Kept for compatibility: the harness's pytest plugin now lives in `harness.testing.pytest_plugin`.

Still a complete pytest plugin (``-p harness.pytest_plugin`` works): it
re-exports the same fixture objects.
"""

from harness.testing.pytest_plugin import harness_loopback, harness_plugins, harness_tiny_benchmark  # noqa: F401

__all__ = ["harness_loopback", "harness_plugins", "harness_tiny_benchmark"]

"""Kept for compatibility: the headless-Chromium driver now lives in `harness.testing.browser`."""

from harness.testing.browser import FLAGS, Browser, find_chromium  # noqa: F401 (re-exports)

__all__ = ["FLAGS", "Browser", "find_chromium"]

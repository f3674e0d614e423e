"""Kept for compatibility: the conformance check's wire half now lives in `harness.testing.conformance_wire`."""

from harness.testing.conformance_wire import (  # noqa: F401 (re-exports)
    __all__,
    answer_first_candidate,
    check_wire_faults,
    error_from_wire,
    tiny_prompt,
)

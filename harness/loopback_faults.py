"""Kept for compatibility: the seeded fault mix now lives in `harness.testing.loopback_faults`."""

from harness.testing.loopback_faults import DEFAULT_FAULTS, fault_mix, first_listed_class  # noqa: F401 (re-exports)

__all__ = ["DEFAULT_FAULTS", "fault_mix", "first_listed_class"]

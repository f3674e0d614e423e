"""Kept for compatibility: the conformance check now lives in `harness.testing.conformance`.

``from harness.conformance import check_classifier, error_from_wire, tiny_prompt``
keeps working; new code imports the same names from `harness.testing.conformance`.
"""

from harness.testing.conformance import (  # noqa: F401 (re-exports)
    RATE_LIMIT_BUDGET_S,
    RECORD_FIELDS,
    TEMPLATE,
    UNKNOWN_OPTION,
    CheckResult,
    ConformanceReport,
    ErrorLike,
    __all__,
    check_classifier,
    error_from_wire,
    tiny_prompt,
)

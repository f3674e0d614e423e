"""Kept for compatibility: the loopback server now lives in `harness.testing.loopback`.

``from harness.loopback import LoopbackServer, Fault, ...`` and
``python -m harness.loopback`` keep working; new code imports from
`harness.testing.loopback` (``python -m harness.testing.loopback``).
"""

from harness.testing.loopback import (  # noqa: F401 (re-exports)
    ANTHROPIC_LEGACY_VERSION,
    ANTHROPIC_PATH,
    OPENAI_PATH,
    TOKENS_PER_IMAGE,
    Answer,
    Fault,
    FaultKind,
    LoopbackServer,
    Outcome,
    Protocol,
    Request,
    Responder,
    __all__,
    always,
    estimate_prompt_tokens,
    main,
    sequence,
)

if __name__ == "__main__":
    raise SystemExit(main())

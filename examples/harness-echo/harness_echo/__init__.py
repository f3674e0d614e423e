"""``echo``: a toy classifier plugin for the harness (see docs/plugins.md).

It answers the class named by its ``answer`` option, or the first candidate
class, without looking at the images. Deterministic, free and offline: a
template for real backends and a fixture for tests, not a model.
"""

from harness.hookspecs import hookimpl

from harness_echo.classifier import EchoClassifier, EchoOptions

__version__ = "0.1.0"
__all__ = ["EchoClassifier", "EchoOptions", "register_classifiers"]


@hookimpl
def register_classifiers(register):
    """Register the ``echo`` classifier (model specs ``echo`` and ``echo:ANYTHING``)."""
    register(EchoClassifier)

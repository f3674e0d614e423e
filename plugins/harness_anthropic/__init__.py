"""``anthropic``: the Anthropic Messages API.

Model specs: ``anthropic:MODEL`` (``anthropic:claude-sonnet-4-5``). The
``anthropic`` SDK is imported when a classifier is created, not when the
harness starts::

    pip install 'anomaly-harness[anthropic]'
"""

from harness.hookspecs import hookimpl

from harness_anthropic.classifier import AnthropicClassifier, AnthropicOptions

__version__ = "0.1.0"
__all__ = ["AnthropicClassifier", "AnthropicOptions", "register_classifiers"]


@hookimpl(trylast=True)
def register_classifiers(register):
    register(AnthropicClassifier)

"""``openai``: OpenAI Chat Completions, and every server that speaks it (vLLM, SGLang, Ollama, LM Studio, llama.cpp).

Model specs: ``openai:MODEL`` (``openai:gpt-4o``; for a local server, the model
name it serves, with the ``base_url`` option). The ``openai`` SDK is imported
when a classifier is created, not when the harness starts::

    pip install 'anomaly-harness[openai]'
"""

from harness.hookspecs import hookimpl

from harness_openai.classifier import OpenAIClassifier, OpenAIOptions

__version__ = "0.1.0"
__all__ = ["OpenAIClassifier", "OpenAIOptions", "register_classifiers"]


@hookimpl(trylast=True)
def register_classifiers(register):
    register(OpenAIClassifier)

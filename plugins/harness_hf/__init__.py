"""``hf``: local vision-language models through Hugging Face transformers.

    harness run --models hf:Qwen/Qwen2-VL-7B-Instruct ...        # a model in the local HF cache
    harness run --models hf:/models/SmolVLM-256M-Instruct ...    # a saved model directory

Any checkpoint that ``AutoProcessor`` and ``AutoModelForImageTextToText`` load
(LLaVA, Qwen2-VL, Idefics3/SmolVLM, ...) works, with its own chat template. The
harness never downloads: a model that is not on disk is an error that says how
to download it. torch and transformers are imported at first use, so the
harness runs without them until an ``hf`` model is asked for
(``pip install 'anomaly-harness[hf]'``).

Modules: `classifier` (the classifier, its options and request batching) and
`vlm` (loading, chat templates, generation and option scoring; needs torch).
"""

from harness.hookspecs import hookimpl

from harness_hf.classifier import HFClassifier, HFOptions

__version__ = "0.1.0"
__all__ = ["HFClassifier", "HFOptions", "register_classifiers"]


@hookimpl(trylast=True)
def register_classifiers(register):
    register(HFClassifier)

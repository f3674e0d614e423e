"""Reference classifiers that need no model: the floor every real model must beat."""

from harness.hookspecs import hookimpl

from harness_baselines.random_classifier import RandomClassifier

__version__ = "0.1.0"


@hookimpl(trylast=True)
def register_classifiers(register):
    register(RandomClassifier)

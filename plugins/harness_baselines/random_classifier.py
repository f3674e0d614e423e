"""``random``: picks a candidate class uniformly at random, reproducibly."""

from __future__ import annotations

import hashlib
import random

from pydantic import Field

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.types import Prompt, Response


class RandomOptions(ClassifierOptions):
    seed: int = Field(0, description="seed; the same seed and request give the same answer")


class RandomClassifier(Classifier):
    """Uniform over the candidate classes.

    The choice depends only on the seed and the request (prompt and image
    contents), not on the order in which concurrent requests finish, so a run
    is reproducible at any concurrency.
    """

    plugin = "random"
    description = "uniform random choice among the candidate classes (seeded)"
    Options = RandomOptions
    capabilities = Capabilities(max_images=None)

    async def classify(self, prompt: Prompt) -> Response:
        key = hashlib.sha256(f"{self.options.seed}:{prompt.request_hash}".encode()).digest()
        rng = random.Random(int.from_bytes(key[:8], "big"))
        choice = rng.choice(prompt.candidates)
        return Response(text=choice.name, tokens_in=0, tokens_out=0, cost_usd=0.0)

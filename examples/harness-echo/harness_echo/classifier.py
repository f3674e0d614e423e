"""The ``echo`` classifier: answers a fixed class, or the first candidate."""

from __future__ import annotations

from pydantic import Field

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.types import Prompt, Response


class EchoOptions(ClassifierOptions):
    """Options of ``echo``; every classifier's options (concurrency, timeout_s, ...) come with it."""

    answer: str | None = Field(
        None, description="class key or display name to answer with; None: the first candidate class"
    )


class EchoClassifier(Classifier):
    """Answers with ``options.answer`` (its display name when it is a candidate) or the first candidate."""

    plugin = "echo"  # serves the model specs "echo" and "echo:ANYTHING"
    description = "toy: answers the class it is told to (option answer), or the first candidate"
    Options = EchoOptions
    capabilities = Capabilities(max_images=None)
    options: EchoOptions

    async def classify(self, prompt: Prompt) -> Response:
        wanted = self.options.answer
        if wanted is None:
            return Response(text=prompt.candidates[0].name, tokens_in=0, tokens_out=0, cost_usd=0.0)
        for candidate in prompt.candidates:
            if wanted in (candidate.key, candidate.name):
                return Response(text=candidate.name, tokens_in=0, tokens_out=0, cost_usd=0.0)
        # Not a candidate here: say it anyway. The core's parser records it as
        # unparseable; a backend never maps a bad answer onto a valid class itself.
        return Response(text=wanted, tokens_in=0, tokens_out=0, cost_usd=0.0)

    def should_retry(self, error: BaseException) -> bool:
        return False  # nothing here fails transiently: no network, no server

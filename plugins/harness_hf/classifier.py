"""The ``hf`` classifier: options, lazy loading, and batching of concurrent requests.

Setting up a run checks that torch and transformers are installed (else a pip
hint), that the checkpoint is on disk (else how to download it) and that the
device exists, so a misconfigured run fails before it starts. The model itself
is loaded on the first request, in the batch worker's thread: a run answered
entirely from the response cache never loads it (nor imports transformers).
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.classifiers import Capabilities, Classifier, ClassifierOptions
from harness.errors import HarnessError
from harness.types import Prompt, Response

from harness_hf.batching import MicroBatcher
from harness_hf.checkpoint import files_fingerprint, require_backend, resolve_checkpoint
from harness_hf.devices import check_attention, check_device_map, resolve_device, resolve_dtype
from harness_hf.placement import ATTENTION, PLANNED, parse_device_map, parse_max_memory

DEFAULT_BATCH_SIZE = 4


class HFOptions(ClassifierOptions):
    """Options of ``hf:`` models (set per model in the run config)."""

    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$",
        description="where the model runs: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps",
    )
    device_map: str | dict[str, str] | None = Field(
        None,
        description="place the model by module instead of on one device (needs accelerate): auto, balanced, "
        "balanced_low_0 or sequential spread it over the GPUs (then the cpu) by size; a device (cuda:1) loads it "
        "straight there; a map {module name = device} places each module. None: load, then move to `device`",
    )
    max_memory: dict[str, str | int] | None = Field(
        None, description='with a planned device_map: most memory per device, e.g. {"0" = "70GiB", "cpu" = "100GiB"}',
    )
    attn_implementation: Literal[ATTENTION] | None = Field(  # type: ignore[valid-type]
        None, description=f"attention kernel: {', '.join(ATTENTION)}; None: transformers' default (sdpa where supported)",
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights and activations: auto is bfloat16 on GPUs that support it, else float16; float32 on cpu",
    )
    mode: Literal["generate", "score"] = Field(
        "generate",
        description="generate: greedy answer text, parsed like any model's; score: the log-likelihood of each "
        "candidate class name as the answer, the best one wins (no parsing, never outside the class set)",
    )
    max_new_tokens: int = Field(16, ge=1, description="generate mode: most tokens generated per answer")
    batch_size: int = Field(
        DEFAULT_BATCH_SIZE, ge=1,
        description="prompts run together in one batch (score mode: their prompts in one forward pass, then all "
        "their candidates' answers in one more, from the prompts' cached keys and values)",
    )
    batch_wait_ms: float = Field(10.0, ge=0, description="how long the first request of a batch waits for others")
    max_image_side: int | None = Field(
        448, ge=16, description="shrink images so their longer side is at most this before the processor (None: as given)",
    )
    max_images: int | None = Field(
        None, ge=1, description="most images per prompt (the least important are dropped first); None: all",
    )
    score_normalization: Literal["sum", "mean"] = Field(
        "sum",
        description="score mode: sum = total log-probability of the answer (the model's probability of giving "
        "exactly that answer); mean = per scored token",
    )
    trust_remote_code: bool = Field(
        False, description="allow checkpoints that ship their own Python code (it runs on this machine)",
    )
    # Overridden defaults of the options every classifier has.
    concurrency: int = Field(
        2 * DEFAULT_BATCH_SIZE, ge=1,
        description="requests in flight at once; default 2 x batch_size, so the next batch fills while one runs",
    )
    timeout_s: float = Field(
        600.0, gt=0,
        description="per-request timeout in seconds; it includes waiting for the batch ahead and, for the first "
        "requests, loading the model",
    )
    max_attempts: int = Field(
        1, ge=1, description="attempts per request; a local model's errors are not transient, so 1",
    )

    @field_validator("device_map", mode="before")
    @classmethod
    def _device_map(cls, value: Any) -> Any:
        return parse_device_map(value)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _max_memory(cls, value: Any) -> Any:
        return parse_max_memory(value)

    @model_validator(mode="after")
    def _placement_is_consistent(self) -> "HFOptions":
        if self.device_map is not None and self.device != "auto":
            raise ValueError(f"set device ({self.device!r}) or device_map ({self.device_map!r}), not both: "
                             "a device_map places the model itself")
        if self.max_memory is not None and self.device_map not in PLANNED:
            raise ValueError(f"max_memory only applies with device_map = one of {', '.join(PLANNED)}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _concurrency_fills_batches(cls, data: Any) -> Any:
        if isinstance(data, dict) and "concurrency" not in data and "batch_size" in data:
            try:
                data = {**data, "concurrency": 2 * int(data["batch_size"])}
            except (TypeError, ValueError):
                pass  # batch_size's own validation reports it
        return data


class HFClassifier(Classifier):
    """A local vision-language model run with transformers (``hf:HUB_ID`` or ``hf:/path/to/model``)."""

    plugin = "hf"
    description = "local vision-language models through Hugging Face transformers (generation or option scoring)"
    Options = HFOptions
    requires_model_id = True
    holds_model = True  # a Ray run loads it once per replica actor (plugins/harness_ray)
    capabilities = Capabilities(max_images=None, can_score_options=True)
    options: HFOptions

    def __init__(self, model_id: str | None, options: HFOptions):
        super().__init__(model_id, options)
        if not model_id:
            raise HarnessError("the hf plugin needs a model: hf:OWNER/NAME or hf:/path/to/model")
        require_backend()
        self.checkpoint = resolve_checkpoint(model_id)
        self._files = files_fingerprint(self.checkpoint.directory)
        # Resolved now (this imports torch), so a device that is not there fails the run before it starts.
        if options.device_map is None:
            self.device: str | None = resolve_device(options.device)
            dtype_device = self.device
        else:
            self.device = None  # known once loaded: where the input embeddings are
            dtype_device = check_device_map(options.device_map)
        self.dtype = resolve_dtype(options.dtype, dtype_device)
        check_attention(options.attn_implementation, dtype_device)
        self.capabilities = Capabilities(max_images=options.max_images, can_score_options=True)
        self._vlm = None
        self._load_error: HarnessError | None = None
        self._load_lock = threading.Lock()
        self._batcher: MicroBatcher[Prompt, Response] = MicroBatcher(
            self._run_batch, max_batch=options.batch_size, max_wait_s=options.batch_wait_ms / 1000
        )

    async def classify(self, prompt: Prompt) -> Response:
        return await self._batcher.submit(prompt)

    async def aclose(self) -> None:
        await self._batcher.aclose()
        with self._load_lock:
            vlm, self._vlm = self._vlm, None
        if vlm is not None:
            vlm.close()

    def answer_options(self) -> dict[str, Any]:
        """Cache-key options: batching is left out, because padding is masked and does not change answers.

        (In half precision a different batch can change rounding, and rarely a
        greedy token; but so can a different mix of requests at the same
        batch size, so keying on it would not make answers reproducible.)
        """
        return {k: v for k, v in super().answer_options().items() if k not in ("batch_size", "batch_wait_ms")}

    def endpoint(self) -> dict[str, Any]:
        """The checkpoint that answers: its resolved directory, Hub revision and a fingerprint of its files.

        The same ``hf:NAME`` over different files (a re-saved directory, another
        snapshot) is another endpoint, so it never gets the other's cached answers.
        """
        return {"checkpoint": str(self.checkpoint.directory), "revision": self.checkpoint.revision, "files": self._files}

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches run so far (for tests and benchmarks)."""
        return self._batcher.batch_sizes

    def describe(self) -> dict[str, Any]:
        described = {
            "spec": self.spec,
            "options": self.options.model_dump(),
            "checkpoint": str(self.checkpoint.directory),
            "revision": self.checkpoint.revision,
            "device": self.device if self.options.device_map is None else "set by device_map",
            "device_map": self.options.device_map,
            "dtype": self.dtype,
        }
        vlm = self._vlm
        if vlm is not None:
            described.update(vlm.info())
        return described

    # ------------------------------------------------------- in the batch worker's thread

    def _loaded(self):
        with self._load_lock:
            if self._vlm is not None:
                return self._vlm
            if self._load_error is not None:  # loading failed once; do not retry it for every batch
                raise self._load_error
            try:
                from harness_hf import vlm

                self._vlm = vlm.LocalVLM(
                    self.checkpoint, device=self.device or "cpu", dtype=self.dtype,
                    max_image_side=self.options.max_image_side, trust_remote_code=self.options.trust_remote_code,
                    device_map=self.options.device_map, max_memory=self.options.max_memory,
                    attn_implementation=self.options.attn_implementation,
                )
            except HarnessError as error:
                self._load_error = error
                raise
            except Exception as error:
                self._load_error = HarnessError(f"could not load {self.checkpoint.source}: {type(error).__name__}: {error}")
                raise self._load_error from error
            return self._vlm

    def _run_batch(self, prompts: list[Prompt]) -> list[Response | Exception]:
        model = self._loaded()
        if self.options.mode == "score":
            return self._score_batch(model, prompts)
        try:
            generations = model.generate(prompts, self.options.max_new_tokens)
        except Exception:
            if len(prompts) == 1:
                raise
            # One bad prompt (or a batch too big for memory) must not fail the others: retry them one by one.
            return [self._generate_one(model, prompt) for prompt in prompts]
        return [Response(text=g.text, tokens_in=g.tokens_in, tokens_out=g.tokens_out) for g in generations]

    def _generate_one(self, model, prompt: Prompt) -> Response | Exception:
        try:
            (g,) = model.generate([prompt], self.options.max_new_tokens)
        except Exception as error:
            return error
        return Response(text=g.text, tokens_in=g.tokens_in, tokens_out=g.tokens_out)

    def _score_batch(self, model, prompts: list[Prompt]) -> list[Response | Exception]:
        results: list[Response | Exception] = [
            HarnessError("option scoring needs candidate classes; the prompt has none") for _ in prompts
        ]
        scorable = [i for i, prompt in enumerate(prompts) if prompt.candidates]
        try:
            scored = model.score_batch([prompts[i] for i in scorable], self.options.score_normalization)
        except Exception as error:
            if len(scorable) <= 1:
                scored = [error] * len(scorable)
            else:
                # One bad prompt (or a batch too big for memory) must not fail the others: retry them one by one.
                scored = [self._score_alone(model, prompts[i]) for i in scorable]
        for i, outcome in zip(scorable, scored):
            results[i] = outcome if isinstance(outcome, Exception) else self._scored_response(prompts[i], outcome)
        return results

    def _score_alone(self, model, prompt: Prompt):
        try:
            (scored,) = model.score_batch([prompt], self.options.score_normalization)
        except Exception as error:
            return error
        return scored

    @staticmethod
    def _scored_response(prompt: Prompt, scored) -> Response:
        best = max(prompt.candidates, key=lambda c: scored.scores[c.key])
        # Nothing is generated: the answer is the best-scoring candidate's name.
        return Response(text=best.name, tokens_in=scored.tokens_in, tokens_out=0, option_scores=scored.scores)

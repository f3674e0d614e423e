"""One record per (sample, model, repeat): what a model's answer becomes in samples.jsonl.

The fields are `harness.record.Record`'s; `harness.scoring.metrics` scores them.
"""

from __future__ import annotations

import math
from typing import Any

from harness.scoring import answers
from harness.classifiers import Classifier
from harness.scoring.decision_report import record_decisions
from harness.scoring.decisions import Policy
from harness.run.dispatch import CallResult
from harness.gates import Gate
from harness.run.pricing import Price
from harness.record import GateVerdict, PromptRef, Record, RecordDecisions
from harness.run.prompt_record import record_field
from harness.types import GOOD, Prepared, Prompt  # Prepared: importable from here as before


class RecordBuilder:
    """Builds the records of one run: its benchmark, gate, prices and decision policy are fixed."""

    def __init__(self, benchmark: str, gate: Gate, prices: dict[str, Price | None], policy: Policy | None,
                 answers_mode: str = "lenient"):
        self.benchmark = benchmark
        self.gate = gate
        self.prices = prices
        self.policy = policy
        self.answers_mode = answers.check_mode(answers_mode)
        self._read: dict[tuple, answers.Reading] = {}  # (answer text, candidates, structured) -> reading

    def record(self, prepared: Prepared, classifier: Classifier, prompt: Prompt | None,
               call: CallResult | None, repeat: int = 0, earlier_attempts: int = 0) -> dict[str, Any]:
        """The record of ``classifier``'s answer (``call``) to ``prompt``; no call: the gate passed the sample."""
        sample, gate = prepared.sample, prepared.gate
        predicted, error, detail, response_text, rule = None, None, None, None, None
        transient = None  # only a failed call can be transient; an answer the parser rejects is not
        if prepared.bad_input is not None:
            error, detail = "bad_input", prepared.bad_input
        elif call is None:
            predicted = GOOD  # passed as normal by the gate: no model is asked
        elif call.error is not None:
            error, detail, transient = call.error, call.detail, call.transient
        else:
            response = call.response
            response_text = response.text
            if response.option_scores is not None:
                reading = answers.read_option_scores(response.option_scores, prompt.candidates)
            elif response.refused:
                reading = answers.Reading(None, answers.REFUSED, "refusal", "the backend flagged the reply as a refusal")
            else:
                # Option numbers refer to the order this prompt listed the classes in.
                reading = self._read_answer(response, prompt.candidates)
            predicted, error, rule = reading.key, reading.error, reading.rule
            detail = reading.detail if reading.error is not None else None
        usage = call.response if call is not None and call.response is not None else None
        record = Record.of(
            sample, self.benchmark, classifier.spec, predicted_label=predicted, error=error, error_detail=detail,
            transient=bool(transient), gate_passes_all=self.gate.passes_all,
            gate=None if gate is None else GateVerdict(self.gate.name, float(gate.score), bool(gate.flagged),
                                                       gate.threshold),
            served_model=usage.served_model if usage else None,
            replica=usage.replica if usage else None,
            prompt=None if prompt is None else PromptRef(prompt.template, prompt.hash),
            prompt_images=record_field(prepared.images, prompt),
            repeat=repeat,
            class_order=None if prompt is None else [c.key for c in prompt.candidates],
            called=call is not None,
            response=response_text,
            option_scores=option_scores(usage),
            answer_rule=rule,
            latency_s=call.latency_s if call is not None else None,
            queued_s=call.queued_s if call is not None else None,
            attempts=call.attempts if call is not None else 0,
            attempts_total=(call.attempts if call is not None else 0) + earlier_attempts,
            cached=bool(call.cached) if call is not None else False,
            batch_id=call.batch_id if call is not None else None,
            tokens_in=usage.tokens_in if usage else None,
            tokens_out=usage.tokens_out if usage else None,
            cost_usd=self._cost(classifier.spec, usage, batch=call is not None and call.batch_id is not None),
        )
        if self.policy is not None:
            record.decisions = RecordDecisions(**record_decisions(record, self.policy))
        return record.to_json()

    def _read_answer(self, response, candidates: list) -> answers.Reading:
        """`answers.read_answer`, once per distinct reading: it is pure, and models repeat short answers."""
        key = (response.text, tuple(candidates), response.structured)
        reading = self._read.get(key)
        if reading is None:
            reading = self._read[key] = answers.read_answer(
                response.text, candidates, structured=response.structured, mode=self.answers_mode
            )
        return reading

    def _cost(self, spec: str, usage, batch: bool = False) -> float | None:
        """The backend's own cost figure when it gives one, else tokens times the price table (its batch discount
        for an answer from a provider batch)."""
        if usage is None:
            return None
        if usage.cost_usd is not None:
            return usage.cost_usd
        price = self.prices.get(spec)
        return price.cost(usage.tokens_in, usage.tokens_out, batch=batch) if price else None


def option_scores(usage) -> dict[str, float | None] | None:
    """An option-scoring model's score per class key (a non-finite score as null, to keep the line strict JSON)."""
    if usage is None or usage.option_scores is None:
        return None
    return {key: float(value) if math.isfinite(value) else None for key, value in usage.option_scores.items()}

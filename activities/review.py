"""REVIEWING: check an output against its blueprint and return a report card.

The checks a blueprint names in `checks` run in order; pure ones come from `policies.checks`, the
semantic drift check uses a local embedding model (`activities.embeddings`) when one is installed.
The model-as-judge step is a model turn the workflow routes like any other, not part of this activity.
`review_and_close` also writes the run's end to the ledger when the card passes and nothing follows.
"""

from __future__ import annotations

import asyncio
import json

from temporalio import activity

from activities.embeddings import Embedder, EmbeddingUnavailable, load_default_embedder
from activities.ledger import Ledger
from activities.ledger.activity import run_end_record
from blueprints.catalog import Catalog
from contracts.run import CheckResult, ReportCard, ReviewAndCloseInput, ReviewAndCloseResult, ReviewInput
from policies import checks as c


class ReviewActivities:
    """Runs the report-card checks a blueprint names."""

    def __init__(
        self, catalog: Catalog, embedder: Embedder | None = None, ledger: Ledger | None = None
    ) -> None:
        self._catalog = catalog
        self._embedder = embedder
        self._ledger = ledger
        self._embedder_error: str | None = None

    def _get_embedder(self) -> Embedder | None:
        if self._embedder is None and self._embedder_error is None:
            try:
                self._embedder = load_default_embedder()
            except EmbeddingUnavailable as exc:
                self._embedder_error = str(exc)
        return self._embedder

    @activity.defn(name="review_output")
    async def review_output(self, inp: ReviewInput) -> ReportCard:
        """Run every check the blueprint names (the judge runs in the workflow); collect a report card."""
        blueprint, error = self._catalog.resolve(inp.blueprint.name, inp.blueprint.version)
        if blueprint is None:
            msg = error.message if error else "blueprint vanished"
            return ReportCard(
                passed=False,
                attempt=inp.attempt,
                checks=[CheckResult(name="schema", passed=False, message=msg)],
            )
        spec = inp.blueprint.review
        results: list[CheckResult] = []
        for name in inp.blueprint.checks or ["schema"]:
            if name == c.SCHEMA:
                results += c.check_schema(blueprint.output_model, inp.output)
            elif name == c.CARDINALITY:
                results += c.check_cardinality(inp.output, spec.min_counts)
            elif name == c.COMPLETENESS:
                results += c.check_completeness(inp.output, spec.placeholders)
            elif name == c.FAILURE_PATTERNS:
                results += c.check_failure_patterns(inp.output, spec.failure_patterns)
            elif name == c.DRIFT_LENGTH:
                results += c.check_drift_length(inp.output, spec)
            elif name == c.DRIFT_SEMANTIC:
                results.append(await self._semantic(inp, spec.min_similarity))
            elif name == c.JUDGE:
                continue  # a model turn: the workflow runs it after these checks pass
            else:
                results.append(c.unknown_check(name))
        return ReportCard(passed=card_passed(results), checks=results, attempt=inp.attempt)

    @activity.defn(name="review_and_close")
    async def review_and_close(self, inp: ReviewAndCloseInput) -> ReviewAndCloseResult:
        """The report card; when it passes, also the run's end (COMPLETE) into the ledger, so that
        a run that passes review needs no step of its own to record its end."""
        card = await self.review_output(inp.review)
        if not card.passed or inp.close is None or self._ledger is None:
            return ReviewAndCloseResult(card=card)
        await self._ledger.record_run_end(run_end_record(inp.close), inp.close.ledger)
        return ReviewAndCloseResult(card=card, closed=True)

    async def _semantic(self, inp: ReviewInput, min_similarity: float) -> CheckResult:
        embedder = await asyncio.to_thread(self._get_embedder)
        if embedder is None:
            return CheckResult(
                name=c.DRIFT_SEMANTIC,
                passed=False,
                skipped=True,
                message=f"not available: {self._embedder_error} (install the `embeddings` extra)",
            )
        request_text = c.text_of(inp.request_input) or json.dumps(inp.request_input, default=str)[:4000]
        output_text = c.text_of(inp.output)
        if not output_text.strip():
            return CheckResult(
                name=c.DRIFT_SEMANTIC, passed=False, message="the output has no text to compare"
            )
        similarity = await asyncio.to_thread(embedder.similarity, request_text, output_text)
        return CheckResult(
            name=c.DRIFT_SEMANTIC,
            passed=similarity >= min_similarity,
            message=f"similarity to the request {similarity:.3f} (pass ≥ {min_similarity}) by {embedder.name}",
        )


def card_passed(results: list[CheckResult]) -> bool:
    """A card passes when every check that ran passed (skipped checks are shown, never counted)."""
    ran = [r for r in results if not r.skipped]
    return bool(ran) and all(r.passed for r in ran)

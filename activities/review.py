"""REVIEWING: check an output against its blueprint and return a report card."""

from __future__ import annotations

from pydantic import ValidationError
from temporalio import activity

from blueprints.catalog import Catalog
from contracts.run import CheckResult, ReportCard, ReviewInput


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class ReviewActivities:
    """Runs the report-card checks a blueprint names."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @activity.defn(name="review_output")
    async def review_output(self, inp: ReviewInput) -> ReportCard:
        """Schema compliance of the output (each violation with its JSON path)."""
        blueprint, error = self._catalog.resolve(inp.blueprint.name, inp.blueprint.version)
        if blueprint is None:
            msg = error.message if error else "blueprint vanished"
            return ReportCard(
                passed=False,
                attempt=inp.attempt,
                checks=[CheckResult(name="schema", passed=False, message=msg)],
            )
        checks: list[CheckResult] = []
        try:
            blueprint.output_model.model_validate(inp.output)
            checks.append(CheckResult(name="schema", passed=True, message="output matches the schema"))
        except ValidationError as exc:
            for err in exc.errors():
                checks.append(
                    CheckResult(name="schema", passed=False, message=err["msg"], path=_json_path(err["loc"]))
                )
        return ReportCard(passed=all(c.passed for c in checks), checks=checks, attempt=inp.attempt)

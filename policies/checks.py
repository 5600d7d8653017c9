"""Report-card checks that are pure functions of an output and the blueprint's review settings.

Each returns `CheckResult`s with a JSON path; REVIEWING's activity runs the ones a blueprint names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.review import FailurePattern, ReviewSpec
from contracts.run import CheckResult

SCHEMA = "schema"
CARDINALITY = "cardinality"
COMPLETENESS = "completeness"
FAILURE_PATTERNS = "failure_patterns"
DRIFT_LENGTH = "drift_length"
DRIFT_SEMANTIC = "drift_semantic"
JUDGE = "judge"
#: Every check a blueprint may name in `checks`.
KNOWN_CHECKS = (SCHEMA, CARDINALITY, COMPLETENESS, FAILURE_PATTERNS, DRIFT_LENGTH, DRIFT_SEMANTIC, JUDGE)


def json_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """`("a", 0, "b")` → `$.a[0].b`."""
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def walk_strings(value: Any, loc: tuple[int | str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its JSON path."""
    if isinstance(value, str):
        yield json_path(loc), value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from walk_strings(sub, (*loc, str(key)))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from walk_strings(sub, (*loc, index))


def resolve_path(value: Any, path: str) -> tuple[bool, Any]:
    """Follow a simple JSON path (`$.a.b[0].c`); (False, None) when it does not exist."""
    tokens = re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path.removeprefix("$"))
    current = value
    for key, index in tokens:
        if key:
            if not isinstance(current, dict) or key not in current:
                return False, None
            current = current[key]
        else:
            i = int(index)
            if not isinstance(current, list) or i >= len(current):
                return False, None
            current = current[i]
    return True, current


def check_schema(output_model: type[BaseModel], output: Any) -> list[CheckResult]:
    """Schema compliance: one failed result per violation, at its JSON path."""
    try:
        output_model.model_validate(output)
    except ValidationError as exc:
        return [
            CheckResult(name=SCHEMA, passed=False, message=err["msg"], path=json_path(err["loc"]))
            for err in exc.errors()
        ]
    return [CheckResult(name=SCHEMA, passed=True, message="output matches the schema")]


def check_cardinality(output: Any, min_counts: dict[str, int]) -> list[CheckResult]:
    """Minimum counts: the list at each configured path holds at least that many items."""
    if not min_counts:
        return [
            CheckResult(name=CARDINALITY, passed=False, message="no min_counts configured for this check")
        ]
    results = []
    for path, minimum in sorted(min_counts.items()):
        found, value = resolve_path(output, path)
        if not found:
            results.append(CheckResult(name=CARDINALITY, passed=False, message="missing", path=path))
        elif not isinstance(value, list | dict | str):
            results.append(
                CheckResult(
                    name=CARDINALITY,
                    passed=False,
                    message=f"not countable ({type(value).__name__})",
                    path=path,
                )
            )
        elif len(value) < minimum:
            results.append(
                CheckResult(
                    name=CARDINALITY,
                    passed=False,
                    message=f"{len(value)} items; at least {minimum} required",
                    path=path,
                )
            )
        else:
            results.append(
                CheckResult(name=CARDINALITY, passed=True, message=f"{len(value)} ≥ {minimum}", path=path)
            )
    return results


def _placeholder_regex(placeholders: list[str]) -> re.Pattern[str] | None:
    parts = []
    for word in placeholders:
        escaped = re.escape(word)
        if re.fullmatch(r"\w+", word):
            parts.append(rf"\b{escaped}\b")
        else:
            # Punctuation placeholders ("...") count only as a token of their own, so that code
            # such as `f(...args)` is not mistaken for an unfinished sentence.
            parts.append(rf"(?<!\S){escaped}(?!\S)")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def check_completeness(output: Any, placeholders: list[str]) -> list[CheckResult]:
    """No empty strings and no placeholder text anywhere in the output."""
    regex = _placeholder_regex(placeholders)
    problems = []
    for path, text in walk_strings(output):
        if not text.strip():
            problems.append(CheckResult(name=COMPLETENESS, passed=False, message="empty string", path=path))
        elif regex is not None and (match := regex.search(text)):
            problems.append(
                CheckResult(
                    name=COMPLETENESS, passed=False, message=f"placeholder {match.group(0)!r}", path=path
                )
            )
    return problems or [
        CheckResult(name=COMPLETENESS, passed=True, message="no empty or placeholder strings")
    ]


def check_failure_patterns(output: Any, patterns: list[FailurePattern]) -> list[CheckResult]:
    """Known failure patterns registered by the blueprint, searched in every string."""
    compiled = [(p, re.compile(p.pattern, re.IGNORECASE)) for p in patterns]
    problems = []
    for path, text in walk_strings(output):
        for pattern, regex in compiled:
            if regex.search(text):
                message = f"{pattern.name}: {pattern.message or 'known failure pattern found'}"
                problems.append(CheckResult(name=FAILURE_PATTERNS, passed=False, message=message, path=path))
    if problems:
        return problems
    return [
        CheckResult(name=FAILURE_PATTERNS, passed=True, message=f"none of {len(patterns)} patterns found")
    ]


def output_chars(output: Any) -> int:
    """The size drift is measured in: characters of the output as compact JSON."""
    return len(json.dumps(output, separators=(",", ":"), ensure_ascii=False, default=str))


def check_drift_length(output: Any, spec: ReviewSpec) -> list[CheckResult]:
    """Length drift: the output's size within `length_tolerance` of `target_chars`."""
    if not spec.target_chars:
        return [
            CheckResult(name=DRIFT_LENGTH, passed=False, message="no target_chars configured for this check")
        ]
    size = output_chars(output)
    low = spec.target_chars * (1 - spec.length_tolerance)
    high = spec.target_chars * (1 + spec.length_tolerance)
    passed = low <= size <= high
    message = f"{size} chars; target {spec.target_chars} (allowed {int(low)}..{int(high)})"
    return [CheckResult(name=DRIFT_LENGTH, passed=passed, message=message)]


def text_of(value: Any, limit: int = 4000) -> str:
    """The strings of a JSON value joined into one text (for embedding), cut at `limit` characters."""
    return " ".join(text for _, text in walk_strings(value))[:limit]


def judge_result(arguments: dict[str, Any], min_score: float) -> CheckResult:
    """A judge's `submit_verdict` arguments as a check: passes when the score reaches `min_score`."""
    try:
        score = float(arguments.get("score", 0.0))
    except (TypeError, ValueError):
        return CheckResult(
            name=JUDGE, passed=False, message=f"judge gave no numeric score: {arguments!r}"[:500]
        )
    reasons = str(arguments.get("reasons", ""))[:1000]
    return CheckResult(
        name=JUDGE, passed=score >= min_score, message=f"score {score:.2f} (pass ≥ {min_score}): {reasons}"
    )


def unknown_check(name: str) -> CheckResult:
    """A blueprint named a check that does not exist: a failed result, so the mistake is seen."""
    return CheckResult(name=name, passed=False, message=f"unknown check; known: {', '.join(KNOWN_CHECKS)}")

"""What a blueprint asks REVIEWING to check, as data recorded with the run's blueprint snapshot."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FailurePattern(BaseModel):
    """A known way outputs go wrong, as a regular expression searched in every string of the output."""

    name: str
    pattern: str
    """Python regular expression (searched case-insensitively)."""
    message: str = ""
    """What to tell the model when the pattern is found."""


class ReviewSpec(BaseModel):
    """Settings of the report-card checks a blueprint names in `checks`.

    Check names: schema, cardinality, completeness, failure_patterns, drift_length, drift_semantic, judge.
    """

    min_counts: dict[str, int] = Field(default_factory=dict)
    """Cardinality: JSON path (`$.test_cases`) → the fewest items the list there must hold."""
    placeholders: list[str] = Field(default_factory=lambda: ["TODO", "TBD", "lorem", "...", "FIXME", "XXX"])
    """Completeness: text that marks an unfinished string (matched as a word, case-insensitively)."""
    failure_patterns: list[FailurePattern] = Field(default_factory=list)
    """Known failure patterns registered by the blueprint."""
    target_chars: int | None = None
    """Drift (length): the output's intended size in characters of compact JSON."""
    length_tolerance: float = 0.5
    """Drift (length): allowed relative deviation from `target_chars` (0.5 = ±50%)."""
    min_similarity: float = 0.2
    """Drift (semantic): the least cosine similarity between the request and the output text."""
    judge_rubric: str = ""
    """Model-as-judge: the rubric the judge step grades against."""
    judge_min_score: float = 0.7
    """Model-as-judge: the least score (0..1) that passes."""

"""Structured content: a validated JSON explainer for an algorithm problem."""

from __future__ import annotations

from pydantic import BaseModel, Field

from blueprints.base import Blueprint


class ExplainerInput(BaseModel):
    """An algorithm problem to explain."""

    title: str = Field(min_length=3, max_length=200, description="Short name of the problem")
    statement: str = Field(min_length=10, max_length=20_000, description="The problem statement")
    audience: str = Field(default="intermediate", max_length=100, description="Who the explainer is for")


class TestCase(BaseModel):
    """One input/expected-output pair."""

    input: str = Field(min_length=1, description="The input, as text")
    expected_output: str = Field(min_length=1, description="The expected output, as text")
    explanation: str = Field(min_length=1, description="Why this output is right")


class CodeSolutions(BaseModel):
    """A solution in each of three languages."""

    python: str = Field(min_length=1)
    javascript: str = Field(min_length=1)
    java: str = Field(min_length=1)


class Explanations(BaseModel):
    """The same idea told three ways."""

    intuitive: str = Field(min_length=1, description="Plain-language intuition")
    step_by_step: str = Field(min_length=1, description="A walk through the algorithm")
    formal: str = Field(min_length=1, description="Complexity and correctness argument")


class ExplainerOutput(BaseModel):
    """The explainer a consumer receives."""

    title: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    test_cases: list[TestCase] = Field(min_length=3)
    code: CodeSolutions
    explanations: Explanations
    complexity: str = Field(min_length=1, description="Time and space complexity")


ALGORITHM_EXPLAINER_V1 = Blueprint(
    name="algorithm-explainer",
    version="1.0.0",
    description="A validated JSON explainer for an algorithm problem: test cases, code in three "
    "languages, three explanation styles.",
    system_prompt=(
        "You write explainers for algorithm problems. Be precise and concise. Every test case must be "
        "correct; every code solution must solve the stated problem; the three explanations must agree."
    ),
    input_model=ExplainerInput,
    output_model=ExplainerOutput,
    example_input={
        "title": "Two Sum",
        "statement": "Given an array of integers nums and an integer target, return the indices of the two "
        "numbers that add up to target. Exactly one solution exists; an element may not be used twice.",
        "audience": "intermediate",
    },
    allowed_tools=(),
    checks=("schema",),
)

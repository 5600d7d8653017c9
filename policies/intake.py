"""INTAKE: turn a request's raw input into a JSON value, or a structured rejection."""

from __future__ import annotations

import json
from typing import Any

from contracts.errors import ErrorCode, ErrorInfo
from contracts.run import RunRequest
from policies.limits import MAX_INPUT_BYTES


def parse_input(request: RunRequest, max_bytes: int = MAX_INPUT_BYTES) -> tuple[Any, ErrorInfo | None]:
    """Parse `input_json` (or take `input`) and enforce the size limit. Pure and deterministic."""
    if not request.blueprint or not request.blueprint.strip():
        return None, ErrorInfo(code=ErrorCode.UNKNOWN_BLUEPRINT, message="no blueprint named in the request")
    if request.oversized_bytes is not None:
        return None, _too_large(request.oversized_bytes, max_bytes)
    if request.input_json is not None:
        size = len(request.input_json.encode("utf-8"))
        if size > max_bytes:
            return None, _too_large(size, max_bytes)
        try:
            value = json.loads(request.input_json)
        except json.JSONDecodeError as exc:
            return None, ErrorInfo(
                code=ErrorCode.MALFORMED_JSON,
                message=f"input is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                details={"line": exc.lineno, "column": exc.colno, "position": exc.pos},
            )
        return value, None
    size = len(json.dumps(request.input, separators=(",", ":"), default=str).encode("utf-8"))
    if size > max_bytes:
        return None, _too_large(size, max_bytes)
    return request.input, None


def _too_large(size: int, max_bytes: int) -> ErrorInfo:
    return ErrorInfo(
        code=ErrorCode.INPUT_TOO_LARGE,
        message=f"input is {size} bytes; the limit is {max_bytes}",
        details={"size_bytes": size, "limit_bytes": max_bytes},
    )

"""The one place where a provider SDK's error becomes a Temporal `ApplicationError`.

Provider SDK retries are off, so Temporal's retry policy decides what happens next: this module
only says whether a retry could help, how long the provider asked us to wait, and what went wrong,
without ever carrying a credential into the error (it lands in workflow history and the UI).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import anthropic
import openai
from temporalio.exceptions import ApplicationError

__all__ = ["MalformedResponseError", "retry_after_seconds", "to_application_error"]

_MESSAGE_LIMIT = 500
_REDACTED = "[redacted]"
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")

_STATUS_ERRORS = (anthropic.APIStatusError, openai.APIStatusError)
_TIMEOUT_ERRORS = (anthropic.APITimeoutError, openai.APITimeoutError, TimeoutError)
_CONNECTION_ERRORS = (anthropic.APIConnectionError, openai.APIConnectionError, ConnectionError)
_VALIDATION_ERRORS = (anthropic.APIResponseValidationError, openai.APIResponseValidationError)


class MalformedResponseError(ValueError):
    """A provider answered 2xx with a body that is not the shape its API promises (no choices,
    no content list). Providers raise it; it maps to a retryable `ProviderMalformedResponse`."""


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the provider asked us to wait, from `retry-after-ms` or `retry-after` (seconds or an
    HTTP-date); None when neither header is present or parseable. A date in the past gives 0."""
    if not headers:
        return None
    milliseconds = _as_seconds(_header(headers, "retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _as_seconds(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def to_application_error(exc: BaseException, *, provider: str) -> ApplicationError:
    """Map a provider SDK error to an `ApplicationError` with a stable `type`, the right
    `non_retryable` flag, `next_retry_delay` from the provider's retry-after headers, and a
    details dict (provider, status, request id, provider error type). Never includes credentials."""
    if isinstance(exc, ApplicationError):
        return exc

    secrets = _secrets_of(exc)
    # The caller raises our error `from exc`, and Temporal records the cause's message too.
    _scrub(exc, secrets)
    status: int | None = None
    headers: Mapping[str, str] | None = None
    if isinstance(exc, _VALIDATION_ERRORS):
        status, headers = exc.status_code, exc.response.headers
    error_type: str | None = None
    error_code: str | None = None
    api_message: str | None = None

    if isinstance(exc, _STATUS_ERRORS):
        status = exc.status_code
        headers = exc.response.headers
        error_type, error_code, api_message = _error_fields(exc.body)
        kind, retryable = _classify_status(status, error_type, exc)
        summary = f"HTTP {status}" + (f" {error_type}" if error_type else "")
        if api_message:
            summary += f": {api_message}"
    elif isinstance(exc, _VALIDATION_ERRORS) or isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        kind, retryable = "ProviderMalformedResponse", True
        summary = f"response body could not be decoded ({type(exc).__name__})"
    elif isinstance(exc, MalformedResponseError):
        kind, retryable = "ProviderMalformedResponse", True
        summary = str(exc)
    elif isinstance(exc, _TIMEOUT_ERRORS):
        kind, retryable = "ProviderTimeout", True
        summary = "request timed out"
    elif isinstance(exc, _CONNECTION_ERRORS):
        kind, retryable = "ProviderConnectionError", True
        summary = f"could not reach the provider ({type(exc.__cause__ or exc).__name__})"
    elif isinstance(exc, anthropic.CredentialsError):
        kind, retryable = "ProviderAuthError", False
        summary = "credentials could not be loaded"
    else:
        # Unknown failures keep Temporal's default (retry under the policy's bounded maximum).
        kind, retryable = "ProviderUnexpectedError", True
        summary = f"{type(exc).__name__}: {exc}"

    delay = retry_after_seconds(headers) if retryable else None
    request_id = _request_id(headers)
    details: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "request_id": request_id,
        "error_type": error_type,
        "error_code": error_code,
        "retry_after_s": delay,
        "exception": type(exc).__name__,
    }
    message = _redact(f"{provider}: {summary}", secrets)
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    details = {
        key: _redact(value, secrets) if isinstance(value, str) else value for key, value in details.items()
    }
    return ApplicationError(
        message,
        details,
        type=kind,
        non_retryable=not retryable,
        next_retry_delay=timedelta(seconds=delay) if delay else None,
    )


def _classify_status(status: int, error_type: str | None, exc: BaseException) -> tuple[str, bool]:
    """(type, retryable) for an HTTP error status."""
    if status == 529 or error_type == "overloaded_error" or isinstance(exc, anthropic.OverloadedError):
        return "ProviderOverloaded", True
    if status == 429:
        return "ProviderRateLimited", True
    if status == 408:
        return "ProviderTimeout", True
    if status == 409:
        # Both SDKs retry 409s by default: the providers use it for transient lock conflicts.
        return "ProviderConflict", True
    if status >= 500:
        return "ProviderServerError", True
    if status in (401, 402, 403):
        return "ProviderAuthError", False
    if status == 404:
        return "ProviderNotFound", False
    return "ProviderBadRequest", False


def _error_fields(body: object) -> tuple[str | None, str | None, str | None]:
    """(error type, error code, message) from either provider's error body.

    Anthropic: {"type": "error", "error": {"type", "message"}}; OpenAI's SDK has already
    unwrapped {"error": {...}} to {"message", "type", "code", "param"}."""
    if not isinstance(body, Mapping):
        return None, None, (body.strip()[:200] or None) if isinstance(body, str) else None
    inner = body.get("error")
    fields: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    error_type = fields.get("type")
    code = fields.get("code")
    if code is None and isinstance(fields.get("details"), Mapping):
        code = fields["details"].get("error_code")
    message = fields.get("message")
    return (
        error_type if isinstance(error_type, str) else None,
        str(code) if code is not None else None,
        message if isinstance(message, str) else None,
    )


def _request_id(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    return _header(headers, "request-id") or _header(headers, "x-request-id")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as httpx headers."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _as_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _secrets_of(exc: BaseException) -> list[str]:
    """Credentials the failed request carried, so that an echoing server cannot leak them into
    the error's message or details."""
    request = getattr(exc, "request", None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return []
    found: list[str] = []
    for name in _SECRET_HEADERS:
        value = _header(headers, name)
        if not value:
            continue
        found.append(value)
        scheme, _, token = value.partition(" ")
        if token and scheme.lower() in ("bearer", "basic"):
            found.append(token)
    # Longest first, so that "Bearer <key>" is replaced whole before "<key>" alone.
    return sorted({secret for secret in found if len(secret) >= 4}, key=len, reverse=True)


def _scrub(exc: BaseException, secrets: list[str]) -> None:
    """Redact credentials an echoing server put into the SDK error's own message."""
    if not secrets:
        return
    exc.args = tuple(_redact(arg, secrets) if isinstance(arg, str) else arg for arg in exc.args)
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        exc.message = _redact(message, secrets)  # type: ignore[attr-defined]


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text

"""One redactor for every sink: logs, span attributes, payloads entering history, the ledger.

It blanks three things: the values of sensitive field names (`api_key`, `authorization`, and the
names configured in settings), the exact values of the secrets this process holds (API keys,
tokens), and text that looks like a credential (`sk-...`, `Bearer ...`). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from settings import Settings

REDACTED = "[redacted]"

# Secrets shorter than this are not scrubbed by value: blanking every "abc" in a log helps nobody.
_MIN_SECRET_LEN = 8


_NOT_ALNUM = re.compile(r"[^a-z0-9]")

# Every JSON string escape; surrogate halves (\ud800-\udfff) are left to the full walk.
_ANY_ESCAPE = re.compile(r'\\(?:(["\\/bfnrt])|u([0-9a-fA-F]{4}))')
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_UNESCAPED = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# One JSON string token (escapes included) and, when it is an object key, the colon after it.
# Scanning a JSON text left to right, these matches are exactly its strings: outside strings
# JSON has no quotes.
_JSON_STRING = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"(\s*:)?', re.DOTALL)


@lru_cache(maxsize=8192)  # the same few hundred field names recur in every payload
def normalize_field(name: str) -> str:
    """`X-Api-Key`, `x_api_key` and `XAPIKEY` compare equal."""
    return _NOT_ALNUM.sub("", name.lower())


@dataclass
class Redactor:
    """Blanks sensitive fields, known secret values and credential-shaped text in any JSON-like value."""

    sensitive_fields: frozenset[str] = frozenset()
    secret_values: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    _value_re: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.sensitive_fields = frozenset(normalize_field(f) for f in self.sensitive_fields)
        values = sorted(
            {v for v in self.secret_values if v and len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True
        )
        self.secret_values = tuple(values)
        # One alternation for the known values and every pattern: a single scan per string.
        parts = [re.escape(v) for v in values] + [_scoped(p.pattern) for p in self.patterns]
        self._value_re = re.compile("|".join(parts)) if parts else None

    @classmethod
    def build(
        cls, fields: Iterable[str] = (), secrets: Iterable[str | None] = (), patterns: Iterable[str] = ()
    ) -> Redactor:
        """A redactor from plain lists (patterns are regular expressions)."""
        return cls(
            sensitive_fields=frozenset(fields),
            secret_values=tuple(s for s in secrets if s),
            patterns=tuple(re.compile(p) for p in patterns),
        )

    @classmethod
    def from_settings(cls, settings: Settings, extra_secrets: Iterable[str | None] = ()) -> Redactor:
        """The process's redactor: configured field names and patterns, plus every secret setting's value."""
        return cls.build(
            settings.sensitive_fields,
            [*secret_setting_values(settings), *extra_secrets],
            settings.redact_patterns,
        )

    def is_sensitive(self, name: str) -> bool:
        """Whether a field called `name` holds a secret."""
        return normalize_field(name) in self.sensitive_fields

    def text(self, value: str) -> str:
        """`value` with known secrets and credential-shaped substrings blanked."""
        if self._value_re is not None:
            value = self._value_re.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with sensitive fields and secret text blanked (other types pass)."""
        if isinstance(value, str):
            return self._embedded_json(value) if value[:1] in ("{", "[") else self.text(value)
        if isinstance(value, Mapping):
            # Only a scalar under a sensitive name is blanked: a dict under `password` is more
            # likely a schema describing the field than the secret itself, so it is walked instead.
            return {
                k: (
                    REDACTED
                    if isinstance(k, str)
                    and self.is_sensitive(k)
                    and isinstance(v, str | int | float)
                    and v != ""
                    else self.value(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def _embedded_json(self, text: str) -> str:
        # JSON inside a string (a tool result fed back to the model, content on a span) hides its
        # field names from a plain text scan: parse it and redact it as structure.
        try:
            decoded = json.loads(text)
        except ValueError:
            return self.text(text)
        cleaned = self.value(decoded)
        return text if cleaned == decoded else json.dumps(cleaned, ensure_ascii=False)

    def json_is_clean(self, raw: str) -> bool:
        """True only when `value(json.loads(raw))` would change nothing, decided without a walk.

        A fast pass for serialized payloads. The value check runs once over the whole text with
        every escape decoded, which holds each decoded string whole. Keys come from a scan of the
        raw text's string tokens (a JSON string token is exact even with escaped quotes inside),
        and a string that decodes to something starting like JSON is checked the same way, as
        the full walk parses such strings. A surrogate escape answers False: the full walk decides."""
        if "\\" in raw:
            if _SURROGATE.search(raw):
                return False
            view = _ANY_ESCAPE.sub(_unescape, raw)
        else:
            view = raw
        # Each pattern on its own: most begin with a literal, which the regex engine scans for
        # quickly; in one alternation it tries every branch at every position (4x slower here).
        if any(secret in view for secret in self.secret_values) or any(p.search(view) for p in self.patterns):
            return False
        sensitive = self.sensitive_fields
        try:
            tokens = _JSON_STRING.findall(raw)
            for key in {body for body, colon in tokens if colon}:
                if normalize_field(_decode_string(key) if "\\" in key else key) in sensitive:
                    return False
            for body in [body for body, colon in tokens if not colon and body[:1] in ("{", "[", "\\")]:
                inner = _decode_string(body) if "\\" in body else body
                if inner[:1] in ("{", "[") and not self.json_is_clean(inner):
                    return False
        except ValueError:  # not a JSON text after all: the caller's parse will say so
            return False
        return True

    def contains_secret(self, text: str) -> bool:
        """Whether `text` still holds something this redactor would blank (for tests and audits)."""
        return self.text(text) != text


def _unescape(match: re.Match[str]) -> str:
    simple, code = match.group(1), match.group(2)
    return _UNESCAPED[simple] if simple else chr(int(code, 16))


def _decode_string(body: str) -> str:
    """The text of a JSON string token's body (the part between its quotes)."""
    return str(json.loads(f'"{body}"'))


def _scoped(pattern: str) -> str:
    """`(?i)abc` → `(?i:abc)`: global inline flags are only legal at the start of a whole regex."""
    match = re.match(r"\(\?([aiLmsux]+)\)", pattern)
    if match:
        return f"(?{match.group(1)}:{pattern[match.end() :]})"
    return f"(?:{pattern})"


def secret_setting_values(settings: Settings) -> list[str]:
    """Values of the settings that are secrets: fields hidden from repr, and any sensitive-named one."""
    redactor = Redactor.build(settings.sensitive_fields)
    values: list[str] = []
    for name, info in type(settings).model_fields.items():
        if info.repr is False or redactor.is_sensitive(name) or name.endswith(("_key", "_token", "_secret")):
            raw = getattr(settings, name)
            if isinstance(raw, str):
                values.append(raw)
            elif isinstance(raw, Mapping):
                values.extend(str(v) for v in raw.values())
    return values


_installed = Redactor.build(("api_key", "authorization", "x-api-key", "password", "secret", "token"))


def install(redactor: Redactor) -> None:
    """Make `redactor` the process's (the log processor and span processor read it on each use)."""
    global _installed
    _installed = redactor


def current() -> Redactor:
    """The process's redactor (a default with the common field names until `install`)."""
    return _installed

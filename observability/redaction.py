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

# JSON string escapes that cannot put a quote or a backslash into the decoded text.
_SIMPLE_ESCAPE = re.compile(r"\\(?:([/bfnrt])|u([0-9a-fA-F]{4}))")
_UNESCAPED = {"/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# With no quote inside any string, a quoted run followed by a colon is exactly an object key.
_JSON_KEY = re.compile(r'"([^"]*)"\s*:')


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
        """True only when `value(json.loads(raw))` would change nothing, decided without parsing.

        A fast pass for serialized payloads: it looks at the JSON text with its simple escapes
        decoded. Anything it cannot judge exactly (an escaped quote or backslash, which is how
        embedded JSON and odd keys look) answers False, and the caller takes the full walk."""
        if "\\" in raw:
            if '\\"' in raw or "\\\\" in raw:
                return False
            view = _SIMPLE_ESCAPE.sub(_unescape, raw)
            if "\\" in view or view.count('"') != raw.count('"'):
                return False  # an escape not decoded here, \u0022 / \u005c, or a surrogate
        else:
            view = raw
        if self._value_re is not None and self._value_re.search(view):
            return False
        sensitive = self.sensitive_fields
        return not any(normalize_field(key) in sensitive for key in set(_JSON_KEY.findall(view)))

    def contains_secret(self, text: str) -> bool:
        """Whether `text` still holds something this redactor would blank (for tests and audits)."""
        return self.text(text) != text


def _unescape(match: re.Match[str]) -> str:
    simple, code = match.group(1), match.group(2)
    if simple:
        return _UNESCAPED[simple]
    point = int(code, 16)
    return "\\" if 0xD800 <= point <= 0xDFFF else chr(point)  # a surrogate half: leave it to the full walk


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

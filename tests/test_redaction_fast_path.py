"""The redaction codec's fast pass (`Redactor.json_is_clean`) never lets through a payload the
full walk would have changed: it may only send clean payloads the slow way, never the reverse."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from temporalio.api.common.v1 import Payload

from observability.codec import _redact_payload
from observability.redaction import Redactor

SECRET = "sk-live-0123456789abcdef"
REDACTOR = Redactor.build(
    fields=("api_key", "authorization", "password", "token"),
    secrets=(SECRET, 'quo"te-secret-value'),
    patterns=(r"Bearer\s+[A-Za-z0-9._-]{8,}", r"(?i)ghp_[a-z0-9]{10,}"),
)

# Keys and text drawn from pieces that make near misses likely: sensitive names spelled other
# ways, names that merely contain one ("max_tokens"), fragments of the secrets and patterns.
PIECES = [
    "api_key",
    "Api-Key",
    "API KEY",
    "apikey",
    "max_tokens",
    "token",
    "tokens",
    "pass word",
    "password",
    "Authorization",
    "name",
    "text",
    "sk-live-",
    "0123456789abcdef",
    "Bearer",
    "Bearer ",
    " abcdefghij",
    "\t",
    "\n",
    "ghp_",
    "GHP_abcdefghijk",
    '"',
    "\\",
    "{",
    "}",
    "[",
    ":",
    ",",
    "é",
    "😀",
    "\u2028",
    "/",
    "quo",
    'quo"te-secret-value',
    "\x00",
    "\x1f",
    SECRET,
    "Bearer abcdefgh12",
    "Bearer\nabcdefgh12",
]
text = st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=6).map("".join)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(text, inner, max_size=4)
        | inner.map(lambda v: json.dumps(v))
    ),  # JSON embedded in a string, as tool results are
    max_leaves=20,
)


def _encodings(value: Any) -> list[str]:
    return [
        json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        json.dumps(value, ensure_ascii=True),
        json.dumps(value, indent=1),
    ]


@settings(max_examples=1500, deadline=None)
@given(values)
def test_fast_pass_is_never_wrong(value: Any) -> None:
    for raw in _encodings(value):
        if REDACTOR.json_is_clean(raw):
            decoded = json.loads(raw)
            assert REDACTOR.value(decoded) == decoded, raw


def test_fast_pass_takes_the_common_payloads_and_refuses_the_dirty_ones() -> None:
    usage = {"input_tokens": 10, "max_tokens": 512, "messages": [{"role": "user", "content": "a\nb\tc é"}]}
    assert REDACTOR.json_is_clean(json.dumps(usage))
    assert REDACTOR.json_is_clean(json.dumps(usage, ensure_ascii=False))
    for dirty in (
        {"api_key": "x"},
        {"outer": {"Api-Key": 3}},
        {"text": f"key {SECRET} here"},
        {"text": "Authorization: Bearer abcdefgh12345"},
        {"text": "Bearer\nabcdefgh12345"},  # the match crosses an escape
        {"nested": json.dumps({"password": "hunter22"})},  # embedded JSON: escaped quotes
        {"\u0070assword": "x"},
    ):
        assert not REDACTOR.json_is_clean(json.dumps(dirty)), dirty
    assert not REDACTOR.json_is_clean('{"\\u0070assword": "x"}')  # an escaped key letter
    assert REDACTOR.json_is_clean('{"a": "x\\", \\"api_key\\": 1"}')  # a key's spelling inside plain text
    assert not REDACTOR.json_is_clean('{"a": "\\u007b\\"token\\": 1}"}')  # embedded JSON behind an escape
    assert not REDACTOR.json_is_clean('{"a": "\\ud83d\\ude00"}')  # a surrogate pair: left to the full walk
    # Escaped quotes no longer send a clean payload the slow way: a prompt quoting JSON, code.
    prompt = {"content": 'Request input:\n{"title": "x"}', "code": 'print("hi")', "max_tokens": 5}
    assert REDACTOR.json_is_clean(json.dumps(prompt))
    assert REDACTOR.json_is_clean(json.dumps({"nested": json.dumps({"title": "x"})}))


def test_codec_still_redacts_what_the_fast_pass_declines() -> None:
    payload = Payload(
        metadata={"encoding": b"json/plain"},
        data=json.dumps(
            {"usage": {"max_tokens": 5}, "headers": {"authorization": "Bearer abcdefgh1234"}}
        ).encode(),
    )
    out = json.loads(_redact_payload(payload, REDACTOR).data)
    assert out == {"usage": {"max_tokens": 5}, "headers": {"authorization": "[redacted]"}}
    clean = Payload(metadata={"encoding": b"json/plain"}, data=b'{"usage":{"max_tokens":5}}')
    assert _redact_payload(clean, REDACTOR) is clean

"""What happens to payloads on their way into Temporal history: redaction, then optional
compression, then optional encryption.

- `RedactionCodec` blanks sensitive fields and secret text in every JSON payload the client or a
  worker sends (workflow input, activity inputs and results, results, failure details), so a
  secret never reaches history. It is one-way: what was blanked stays blank.
- `CompressionCodec` (zlib, from `payload_compression_min_bytes`) shrinks large payloads: model
  requests, outputs, child results. Less history for the server to write, hold and send back; the
  UI then needs the codec server to show those payloads.
- `EncryptionCodec` (AES-256-GCM, key from settings, key id in each payload's metadata) makes the
  history at rest unreadable without the key. The codec server (`observability.codec_server`)
  lets the Temporal UI show decoded payloads to operators who hold the key.
- Failure messages and stack traces are redacted too; with encryption on they move into the
  failure's encoded attributes so the codec encrypts them as well.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import zlib
from collections.abc import Sequence
from typing import ClassVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConverter

from observability import redaction
from settings import Settings

ENCRYPTED_ENCODING = b"binary/encrypted"
COMPRESSED_ENCODING = b"binary/zlib"
# Already compressed or encrypted: zlib would only add its header.
_OPAQUE_ENCODINGS = (COMPRESSED_ENCODING, ENCRYPTED_ENCODING)
KEY_ID_METADATA = "encryption-key-id"
_NONCE_BYTES = 12


class RedactionCodec(PayloadCodec):
    """Blanks secrets inside JSON payloads on encode; decoding returns what history holds."""

    def __init__(self, redactor: redaction.Redactor | None = None) -> None:
        self._redactor = redactor

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        redactor = self._redactor or redaction.current()
        return [_redact_payload(p, redactor) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


def _redact_payload(payload: Payload, redactor: redaction.Redactor) -> Payload:
    if payload.metadata.get("encoding") != b"json/plain":
        return payload
    try:
        if redactor.json_is_clean(payload.data.decode()):
            return payload  # the common case, decided without parsing and walking the payload
        value = json.loads(payload.data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return payload
    cleaned = redactor.value(value)
    if cleaned == value:
        return payload
    out = Payload()
    out.CopyFrom(payload)
    out.data = json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode()
    return out


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload; the key id is bound as associated data."""

    def __init__(self, key: bytes, key_id: str = "default", old_keys: dict[str, bytes] | None = None) -> None:
        self._key_id = key_id
        self._cipher = AESGCM(key)
        self._ciphers = {key_id: self._cipher, **{kid: AESGCM(k) for kid, k in (old_keys or {}).items()}}

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptionCodec | None:
        """The codec for `payload_encryption_key`, or None when encryption is off."""
        if not settings.payload_encryption_key:
            return None
        return cls(decode_key(settings.payload_encryption_key), settings.payload_encryption_key_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """One payload, encrypted (already-encrypted payloads are left alone)."""
        if payload.metadata.get("encoding") == ENCRYPTED_ENCODING:
            return payload
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, payload.SerializeToString(), self._key_id.encode())
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: self._key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """One payload, decrypted (plain payloads pass: history written before encryption was on)."""
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ValueError(f"payload encrypted with key id {key_id!r}, which this process does not hold")
        data = payload.data
        return Payload.FromString(cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], key_id.encode()))


class CompressionCodec(PayloadCodec):
    """zlib over each whole serialized payload from `min_bytes` up to `max_bytes`; decoding always.

    Off (`min_bytes` None), it compresses nothing but still decompresses, so history written while
    compression was on stays readable after it is turned off. Payloads over `max_bytes` (the
    artifact store's threshold) are left whole for the store, which takes them by their real
    size; a payload that would not shrink is left as it is."""

    def __init__(self, min_bytes: int | None, max_bytes: int | None = None, level: int = 1) -> None:
        self._min_bytes = min_bytes
        self._max_bytes = max_bytes
        self._level = level

    @classmethod
    def from_settings(cls, settings: Settings) -> CompressionCodec:
        """The codec for `payload_compression_min_bytes`, bounded by the artifact threshold."""
        return cls(settings.payload_compression_min_bytes, settings.artifact_threshold_bytes)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.compress(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decompress(p) for p in payloads]

    def compress(self, payload: Payload) -> Payload:
        """One payload, compressed when it is in the size range and shrinks."""
        size = len(payload.data)
        if self._min_bytes is None or size < self._min_bytes:
            return payload
        if (self._max_bytes is not None and size > self._max_bytes) or payload.metadata.get(
            "encoding"
        ) in _OPAQUE_ENCODINGS:
            return payload
        whole = payload.SerializeToString()
        packed = zlib.compress(whole, self._level)
        if len(packed) >= len(whole):
            return payload
        return Payload(metadata={"encoding": COMPRESSED_ENCODING}, data=packed)

    def decompress(self, payload: Payload) -> Payload:
        """One payload, decompressed (payloads that were never compressed pass)."""
        if payload.metadata.get("encoding") != COMPRESSED_ENCODING:
            return payload
        return Payload.FromString(zlib.decompress(payload.data))


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, built once per process.

    The worker builds a data converter for every workflow activation, and with it a fresh payload
    converter whose type-adapter cache starts empty: each activation paid for the construction and
    for new type adapters. The converter holds no per-use state (its cache is thread-safe), so
    every construction returns the one instance."""

    _shared: ClassVar[SharedPydanticPayloadConverter | None] = None

    def __new__(cls) -> SharedPydanticPayloadConverter:
        shared = cls._shared
        if shared is None:
            shared = super().__new__(cls)
            PydanticPayloadConverter.__init__(shared)
            cls._shared = shared
        return shared

    def __init__(self) -> None:  # built once, in __new__
        pass


class CodecChain(PayloadCodec):
    """Codecs applied in order on encode and in reverse order on decode."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self._codecs = list(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in self._codecs:
            out = await codec.encode(out)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in reversed(self._codecs):
            out = await codec.decode(out)
        return out


class RedactingFailureConverter(DefaultFailureConverter):
    """The default failure converter, with secrets blanked from messages and stack traces."""

    def __init__(self, *, encode_common_attributes: bool = False) -> None:
        super().__init__(encode_common_attributes=encode_common_attributes)

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        # Redact before the base class may move message and stack trace into encoded attributes.
        super().to_failure(exception, payload_converter, failure)
        redactor = redaction.current()
        current: Failure | None = failure
        while current is not None:
            current.message = redactor.text(current.message)
            current.stack_trace = redactor.text(current.stack_trace)
            current = current.cause if current.HasField("cause") else None


class EncryptedFailureConverter(RedactingFailureConverter):
    """Moves failure messages and stack traces into encoded attributes, which the codec encrypts."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter with redaction always on, compression and encryption as
    settings say, and payloads over the threshold moved to the artifact store last (so the store
    holds ciphertext). Compressed payloads are always decoded, whatever the setting now is."""
    from activities.artifacts import ArtifactCodec, FileArtifactStore

    encryption = EncryptionCodec.from_settings(settings)
    codecs: list[PayloadCodec] = [RedactionCodec(), CompressionCodec.from_settings(settings)]
    if encryption is not None:
        codecs.append(encryption)
    store = FileArtifactStore(settings.resolved_artifact_dir())
    codecs.append(ArtifactCodec(store, settings.artifact_threshold_bytes))
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SharedPydanticPayloadConverter,
        payload_codec=CodecChain(codecs),
        failure_converter_class=EncryptedFailureConverter if encryption else RedactingFailureConverter,
    )


def decode_key(text: str) -> bytes:
    """A base64 AES key of 16, 24 or 32 bytes."""
    key = base64.b64decode(text)
    if len(key) not in (16, 24, 32):
        raise ValueError(f"payload_encryption_key must be base64 of 16, 24 or 32 bytes, got {len(key)} bytes")
    return key


def generate_key() -> str:
    """A fresh base64 AES-256 key for `PAYLOAD_ENCRYPTION_KEY`."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

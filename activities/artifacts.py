"""The artifact store: large payloads live here and travel through Temporal by reference.

`FileArtifactStore` keeps content-addressed files (sha256) under a folder (settings.data_dir/artifacts
by default). `ArtifactCodec` is a Temporal payload codec: any payload over the threshold (256 KB) is
written to the store and replaced by a small reference payload, so outputs, tool results, batch items
and activity inputs never bring anything near Temporal's 2 MB limit into history. Clients and workers
that share a store decode the references transparently.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from contracts.artifacts import ArtifactRef

#: Payloads larger than this go to the artifact store (Temporal warns at 256 KB and refuses 2 MB).
DEFAULT_THRESHOLD_BYTES = 256 * 1024
#: Metadata encoding of a reference payload; the metadata and data name the stored payload.
REF_ENCODING = b"binary/ai-factory-artifact-ref"


class ArtifactMissing(Exception):
    """A reference points at content the store does not hold (wrong location, deleted file)."""


class FileArtifactStore:
    """Content-addressed files: `<root>/<sha[:2]>/<sha>`; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ArtifactMissing(f"not an artifact key: {key[:80]!r}")
        return self.root / key[:2] / key

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> ArtifactRef:
        """Store `data` (once per content) and return its reference."""
        key = hashlib.sha256(data).hexdigest()
        path = self._path(key)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return ArtifactRef(key=key, size_bytes=len(data), media_type=media_type)

    def get_bytes(self, ref: ArtifactRef | str) -> bytes:
        """The stored bytes; raises ArtifactMissing when absent or corrupted."""
        key = ref if isinstance(ref, str) else ref.key
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"artifact {key} is not in {self.root}") from None
        if hashlib.sha256(data).hexdigest() != key:
            raise ArtifactMissing(f"artifact {key} in {self.root} is corrupted")
        return data

    def put_json(self, value: Any) -> ArtifactRef:
        """Store a JSON value."""
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")
        return self.put_bytes(data, "application/json")

    def get_json(self, ref: ArtifactRef) -> Any:
        """Load a JSON value stored with `put_json`."""
        return json.loads(self.get_bytes(ref))

    def exists(self, ref: ArtifactRef) -> bool:
        """True when the content is stored."""
        return self._path(ref.key).exists()


class ArtifactCodec(PayloadCodec):
    """Offloads payloads over `threshold_bytes` to the store; decodes references back."""

    def __init__(self, store: FileArtifactStore, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each large payload with a reference to its stored bytes."""
        out = []
        for payload in payloads:
            if payload.ByteSize() <= self.threshold_bytes:
                out.append(payload)
                continue
            data = payload.SerializeToString()
            ref = await asyncio.to_thread(self.store.put_bytes, data, "application/x-temporal-payload")
            out.append(
                Payload(metadata={"encoding": REF_ENCODING}, data=ref.model_dump_json().encode("utf-8"))
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Load referenced payloads back from the store; others pass through."""
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != REF_ENCODING:
                out.append(payload)
                continue
            ref = ArtifactRef.model_validate_json(payload.data)
            data = await asyncio.to_thread(self.store.get_bytes, ref)
            original = Payload()
            original.ParseFromString(data)
            out.append(original)
        return out


def artifact_store(root: Path) -> FileArtifactStore:
    """The filesystem artifact store rooted at `root`."""
    return FileArtifactStore(root)


def data_converter(store: FileArtifactStore, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES) -> DataConverter:
    """The pydantic data converter with large payloads offloaded to `store`."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=ArtifactCodec(store, threshold_bytes))

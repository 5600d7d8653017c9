"""References to payloads kept in the artifact store instead of workflow history."""

from __future__ import annotations

from pydantic import BaseModel


class ArtifactRef(BaseModel):
    """Where a large payload lives: a content address (sha256) in the artifact store, and its size."""

    key: str
    """The sha256 of the stored bytes: the same content is stored once."""
    size_bytes: int
    media_type: str = "application/json"

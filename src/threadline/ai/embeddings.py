"""Local sentence embeddings and the choice of backend: torch fp32 or ONNX Runtime int8.

Two backends compute all-MiniLM-L6-v2 vectors from the same verified weights:
- `torch` (`threadline.ai.torch_embeddings.LocalEmbedder`): sentence-transformers, fp32, the reference;
- `onnx-int8` (`threadline.ai.onnx_embeddings.OnnxEmbedder`): built locally from the weights,
  3.0-3.3x faster on 2 cores, cosine >= `embedding.min_cosine` to torch on a fixed check set.

Their vectors differ slightly, so each backend has its own `model_name` (the key of stored
vectors, type analyses and themes): vectors of different backends are never mixed. A run keeps
the backend chosen when it was created (`planned_backend`), and a worker serves only the
backends it can provide (`provided_backends`).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from typing import Literal

from threadline.ai.onnx_embeddings import (
    ONNX_MODEL_NAME,
    OnnxBackendError,
    OnnxEmbedder,
    available_cores,
    load_best_embedder,
    session_layout,
    stored_check_result,
)
from threadline.ai.torch_embeddings import (
    DIMENSIONS,
    MODEL_NAME,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    Embedder,
    LocalEmbedder,
    ModelIntegrityError,
    get_embedder,
    model_dir,
    verify_weights,
)
from threadline.config import get_settings
from threadline.heap import freeze_long_lived_objects

logger = logging.getLogger(__name__)

__all__ = [
    "BACKEND_MODELS",
    "DIMENSIONS",
    "MODEL_NAME",
    "WEIGHTS_FILE",
    "WEIGHTS_SHA256",
    "Backend",
    "Embedder",
    "LocalEmbedder",
    "ModelIntegrityError",
    "backend_of_model",
    "embedder_for_backend",
    "get_embedder",
    "model_dir",
    "planned_backend",
    "process_embedder",
    "provided_backends",
    "select_embedder",
    "set_process_embedder",
    "verify_weights",
]

Backend = Literal["onnx-int8", "torch"]

#: `model_name` of each concrete backend's vectors (the key of stored vectors and of everything derived).
BACKEND_MODELS: dict[str, str] = {"onnx-int8": ONNX_MODEL_NAME, "torch": MODEL_NAME}


def backend_of_model(model_name: str) -> str | None:
    """The backend whose vectors carry `model_name`, or None for another embedder (a test's stand-in)."""
    for backend, name in BACKEND_MODELS.items():
        if name == model_name:
            return backend
    return None


def onnxruntime_installed() -> bool:
    """Whether ONNX Runtime can be found (without importing it: cheap enough for run creation)."""
    if "onnxruntime" in sys.modules:  # imported already, or blocked (None) by whoever set up the process
        return sys.modules["onnxruntime"] is not None
    return importlib.util.find_spec("onnxruntime") is not None


def planned_backend() -> Backend:
    """The backend a run created now will use, decided without building or loading a model.

    An explicit `embedding.backend` setting wins. `auto` plans `onnx-int8` when ONNX Runtime is
    installed and the current artifact has not already failed its check (the stored check result,
    if any, is below `embedding.min_cosine`); otherwise `torch`.
    """
    settings = get_settings()
    choice = settings.embedding.backend
    if choice != "auto":
        return choice
    if not onnxruntime_installed():
        return "torch"
    checked = stored_check_result(settings.models_dir)
    if checked is not None and not checked[1] >= settings.embedding.min_cosine:
        return "torch"
    return "onnx-int8"


def select_embedder(prefer: str | None = None) -> Embedder:
    """The fastest backend that passes its check (`auto`), or the one `prefer` (default: the setting) names.

    `onnx-int8` raises `OnnxBackendError` when ONNX cannot be provided; `auto` falls back to
    torch with a logged warning. The torch embedder is the process-wide shared one.
    """
    settings = get_settings()
    choice = prefer or settings.embedding.backend
    layout = session_layout(available_cores(), settings.embedding.sessions, settings.embedding.intra_op_threads)
    return load_best_embedder(
        settings.models_dir,
        prefer=choice,  # type: ignore[arg-type]
        min_cosine=settings.embedding.min_cosine,
        layout=layout,
        allow_spinning=settings.embedding.allow_spinning,
        torch_factory=lambda directory: get_embedder() if directory == model_dir() else LocalEmbedder(directory),
    )


_process_lock = threading.Lock()
_process_embedder: Embedder | None = None
_backend_embedders: dict[str, Embedder] = {}  # backend -> embedder this process provides
_unavailable: dict[str, str] = {}  # backend -> why this process cannot provide it


def set_process_embedder(embedder: Embedder | None) -> None:
    """Use `embedder` for every job of this process (tests and `execute_run` pass theirs)."""
    global _process_embedder
    with _process_lock:
        _process_embedder = embedder
        _backend_embedders.clear()
        _unavailable.clear()
        if embedder is not None:
            backend = backend_of_model(embedder.model_name)
            if backend is not None:
                _backend_embedders[backend] = embedder
    if embedder is not None:
        freeze_long_lived_objects()  # the process keeps its model from now on


def process_embedder() -> Embedder:
    """The process-wide embedder (the setting's backend, or the fastest that passes), shared by all worker threads."""
    global _process_embedder
    with _process_lock:
        if _process_embedder is None:
            _process_embedder = select_embedder()
            backend = backend_of_model(_process_embedder.model_name)
            if backend is not None:
                _backend_embedders[backend] = _process_embedder
            freeze_long_lived_objects()  # the model lives as long as the process
        return _process_embedder


def embedder_for_backend(backend: str) -> Embedder:
    """This process's embedder for `backend`; raises `OnnxBackendError` when it cannot provide it.

    The process embedder serves its own backend (and any backend when it is a stand-in, e.g. a
    test's); `torch` is always available; `onnx-int8` is built and checked on first use.
    """
    with _process_lock:
        current = _process_embedder
        if current is not None and backend_of_model(current.model_name) is None:
            return current  # a stand-in embedder (tests): it serves every run of its process
        found = _backend_embedders.get(backend)
        if found is not None:
            return found
        if backend in _unavailable:
            raise OnnxBackendError(_unavailable[backend])
    try:
        embedder = select_embedder(backend)
    except OnnxBackendError as exc:
        with _process_lock:
            _unavailable[backend] = str(exc)
        raise
    with _process_lock:
        kept = _backend_embedders.setdefault(backend, embedder)
    if kept is not embedder and isinstance(embedder, OnnxEmbedder):
        embedder.close()  # another thread provided the backend first: release this one's sessions and threads
    return kept


def provided_backends() -> list[str]:
    """The backends this process can provide, resolved now (builds and checks ONNX if the setting allows it).

    `torch` always; `onnx-int8` when the setting is not `torch` and the ONNX model builds and passes
    its check. A worker listens to the embedding queues of exactly these backends.
    """
    with _process_lock:
        current = _process_embedder
    if current is not None and backend_of_model(current.model_name) is None:
        return list(BACKEND_MODELS)  # a stand-in embedder serves every backend's runs (tests)
    backends = ["torch"]
    if get_settings().embedding.backend == "torch":
        logger.info("embedding backend set to torch: this worker leaves onnx-int8 runs to other workers")
    elif not onnxruntime_installed():
        logger.warning("onnxruntime is not installed: this worker leaves onnx-int8 runs' embedding to other workers")
    else:
        try:
            embedder_for_backend("onnx-int8")
            backends.insert(0, "onnx-int8")
        except OnnxBackendError as exc:
            logger.warning("this worker leaves onnx-int8 runs' embedding to other workers: %s", exc)
    return backends

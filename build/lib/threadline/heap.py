"""Keep the garbage collector off the objects a worker process keeps for its lifetime.

A worker holds a large, permanent heap: the imported libraries (torch, transformers,
scikit-learn, SQLAlchemy) and the loaded embedding model. CPython's full collections
walk every tracked object, so each one costs ~0.3 s with the model loaded, and a 10,000
conversation run triggers several while it allocates. `gc.freeze()` moves what exists
now to a permanent generation that collections skip; objects created later are
collected as usual.
"""

from __future__ import annotations

import gc
import logging
import threading

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_frozen = False


def freeze_long_lived_objects() -> None:
    """Once per process: exempt every live object from collections.

    Called when the process takes its embedding model for good
    (`threadline.ai.embeddings.process_embedder`), the largest thing it will ever load; a
    worker imports every registered stage before that (`threadline.engine.worker`), so the
    libraries of later phases are frozen too. Only the young generations are collected
    first (a full pass is the very cost this avoids); garbage already old at that moment
    stays, once. Later calls do nothing, so per-job objects are never frozen (a reference
    cycle among them would otherwise leak).
    """
    global _frozen
    with _lock:
        if _frozen:
            return
        gc.collect(1)
        gc.freeze()
        _frozen = True
    logger.debug("%d objects exempted from garbage collection", gc.get_freeze_count())

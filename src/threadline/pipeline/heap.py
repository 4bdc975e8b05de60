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
    """Once per process: import the job modules, then exempt every live object from collections.

    Called when the process takes its embedding model for good (`stages`), the largest
    thing it will ever load. Only the young generations are collected first (a full pass
    is the very cost this avoids); garbage already old at that moment stays, once.
    Later calls do nothing, so per-job objects are never frozen (a reference cycle among
    them would otherwise leak).
    """
    global _frozen
    with _lock:
        if _frozen:
            return
        _load_job_modules()
        gc.collect(1)
        gc.freeze()
        _frozen = True
    logger.debug("%d objects exempted from garbage collection", gc.get_freeze_count())


def _load_job_modules() -> None:
    """Import the modules jobs use (clustering, naming, stories), so they are part of the frozen heap."""
    import threadline.stories.build  # noqa: F401
    import threadline.themes.discover  # noqa: F401

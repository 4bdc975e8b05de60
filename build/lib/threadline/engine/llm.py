"""The LLM runtime a worker process hands to its stages (None on the offline path).

Provider plumbing (`threadline.ai.llm`) knows neither the database nor the engine; the
engine supplies what needs them: the live-worker count that divides the rate budget, and
the run's spend so far (`threadline.engine.budget`).
"""

from __future__ import annotations

from sqlalchemy import Engine

from threadline.ai.llm.runtime import LLMRuntime, process_runtime
from threadline.config import LLMSettings, get_settings
from threadline.engine.budget import live_worker_count


def configured_llm() -> LLMSettings | None:
    """This process's LLM settings when an endpoint and key are configured, else None."""
    return get_settings().configured_llm()


def llm_runtime(engine: Engine) -> LLMRuntime | None:
    """The process's LLM runtime, its budget divided among live workers; None when offline."""
    settings = configured_llm()
    if settings is None:
        return None
    return process_runtime(settings, live_workers=lambda: live_worker_count(engine))

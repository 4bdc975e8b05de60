"""The stages a durable run executes, by name: per-conversation batches and whole-run steps.

Each per-conversation stage turns a batch of conversation ids into a `BatchOutcome`
(which ids are done, which skipped and why); the stage functions themselves
(`embed_conversations`, `classify_conversations`) are unchanged and idempotent. Whole-run
stages (`themes`, `stories`) return their result as a counters dict.

`sleep` is a test and benchmark stage: an I/O-bound step with simulated latency
(`sleep_ms` in the run's params, slept once per batch, like one provider call per batch).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from threadline.pipeline.classify import classify_conversations, load_types
from threadline.pipeline.embed import Embedder, embed_conversations

DEFAULT_PHASES = ("embed", "classify", "themes", "stories")
PER_CONVERSATION_STAGES = ("embed", "classify", "sleep")
WHOLE_RUN_STAGES = ("themes", "stories")
MAX_SLEEP_MS = 60_000  # milliseconds per batch of the `sleep` stage: a simulated call, not a way to park workers


@dataclass
class BatchOutcome:
    """What a per-conversation stage did with one batch; counters are summed from these."""

    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # conversation id -> reason
    computed: int = 0
    reused: int = 0


_embedder_lock = threading.Lock()
_embedder: Embedder | None = None


def set_process_embedder(embedder: Embedder | None) -> None:
    """Use this embedder for every job of this process (tests and `execute_run` pass theirs)."""
    global _embedder
    with _embedder_lock:
        _embedder = embedder


def process_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use and shared by all worker threads."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            from threadline.ai.embeddings import get_embedder

            _embedder = get_embedder()
        return _embedder


def _outcome(ids: Sequence[int], skipped: dict[int, str], computed: int, reused: int) -> BatchOutcome:
    return BatchOutcome(done=[i for i in ids if i not in skipped], skipped=dict(skipped), computed=computed, reused=reused)


def _embed(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    result = embed_conversations(session, ids, process_embedder())
    return _outcome(ids, result.skipped, result.computed, result.reused)


def _classify(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    result = classify_conversations(session, ids, process_embedder())
    return _outcome(ids, result.skipped, result.computed, result.reused)


def _sleep(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    delay_ms = min(float(params.get("sleep_ms", 0)), MAX_SLEEP_MS)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)
    return BatchOutcome(done=list(ids), computed=len(ids))


def _themes(session: Session, run_id: int) -> dict[str, Any]:
    from threadline.themes.discover import discover_themes

    return asdict(discover_themes(session, run_id))


def _stories(session: Session, run_id: int) -> dict[str, Any]:
    from threadline.stories.build import build_stories

    return asdict(build_stories(session, run_id, types=load_types(session, run_id)))


PerConversationStage = Callable[[Session, Sequence[int], dict[str, Any]], BatchOutcome]
WholeRunStage = Callable[[Session, int], dict[str, Any]]

PER_CONVERSATION: dict[str, PerConversationStage] = {"embed": _embed, "classify": _classify, "sleep": _sleep}
WHOLE_RUN: dict[str, WholeRunStage] = {"themes": _themes, "stories": _stories}

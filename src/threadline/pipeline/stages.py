"""The stages a durable run executes, by name: per-conversation batches and whole-run steps.

Each per-conversation stage turns a batch of conversation ids into a `BatchOutcome`
(which ids are done, which skipped and why); the stage functions themselves
(`embed_conversations`, `classify_conversations`) are idempotent. Whole-run stages
(`themes`, `stories`) return their result as a counters dict.

`embed` also stores each conversation's offline type: the type needs the text and the
vector, which the batch holds in memory at that point. `classify` alone is kept for runs
whose phases name it (runs created before types moved into `embed`, tests).

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
from threadline.pipeline.heap import freeze_long_lived_objects

DEFAULT_PHASES = ("embed", "themes", "stories")
LLM_PHASES = ("embed", "facets", "themes", "stories")  # when an LLM endpoint is configured
PER_CONVERSATION_STAGES = ("embed", "facets", "classify", "sleep")
WHOLE_RUN_STAGES = ("themes", "stories")
MAX_SLEEP_MS = 60_000  # milliseconds per batch of the `sleep` stage: a simulated call, not a way to park workers


@dataclass
class BatchOutcome:
    """What a per-conversation stage did with one batch; counters are summed from these."""

    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # conversation id -> reason
    computed: int = 0
    reused: int = 0
    failed: dict[int, tuple[str, str, int]] = field(default_factory=dict)  # id -> (error class, message, attempts)
    extra_counters: dict[str, float] = field(default_factory=dict)  # e.g. tokens and cost of LLM calls
    stop_reason: str | None = None  # set when the run must stop (its LLM budget is spent)


_embedder_lock = threading.Lock()
_embedder: Embedder | None = None


def set_process_embedder(embedder: Embedder | None) -> None:
    """Use this embedder for every job of this process (tests and `execute_run` pass theirs)."""
    global _embedder
    with _embedder_lock:
        _embedder = embedder
    if embedder is not None:
        freeze_long_lived_objects()  # the process keeps its model from now on


def process_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use and shared by all worker threads."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            from threadline.ai.embeddings import get_embedder

            _embedder = get_embedder()
            freeze_long_lived_objects()  # the model lives as long as the process
        return _embedder


def _outcome(ids: Sequence[int], skipped: dict[int, str], computed: int, reused: int) -> BatchOutcome:
    return BatchOutcome(
        done=[i for i in ids if i not in skipped], skipped=dict(skipped), computed=computed, reused=reused
    )


def _embed(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    """Vectors, then types from the texts and vectors still in memory (counters: `typed` = types computed)."""
    embedder = process_embedder()
    embedded = embed_conversations(session, ids, embedder)
    typed = classify_conversations(session, ids, embedder, texts=embedded.texts, vectors=embedded.vectors)
    outcome = _outcome(ids, embedded.skipped, embedded.computed, embedded.reused)
    outcome.extra_counters["typed"] = typed.computed
    return outcome


def _classify(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    result = classify_conversations(session, ids, process_embedder())
    return _outcome(ids, result.skipped, result.computed, result.reused)


def _sleep(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    delay_ms = min(float(params.get("sleep_ms", 0)), MAX_SLEEP_MS)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)
    return BatchOutcome(done=list(ids), computed=len(ids))


def product_phases() -> tuple[str, ...]:
    """The phases a run executes: with an LLM configured, per-conversation facets too."""
    from threadline.ai.llm.settings_env import load_llm_settings

    return LLM_PHASES if load_llm_settings() is not None else DEFAULT_PHASES


def _llm_runtime(session: Session):
    """The process's LLM runtime (None on the offline path), its budget divided among live workers."""
    from threadline.ai.llm.runtime import process_runtime
    from threadline.ai.llm.settings_env import load_llm_settings
    from threadline.pipeline.budget import live_worker_count

    settings = load_llm_settings()
    if settings is None:
        return None
    engine = session.get_bind()
    return process_runtime(settings, live_workers=lambda: live_worker_count(engine))


def _cost_counters(usages: Sequence[Any], prices: dict[str, Any]) -> dict[str, float]:
    from threadline.ai.llm.cost import summarize

    total = summarize(list(usages), prices).total
    return {
        "llm_calls": total.calls,
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "cost": round(total.cost, 6),
    }


def run_llm_spend(session: Session, run_id: int) -> float:
    """What the run's LLM calls have cost so far, from the counters its stages committed."""
    from threadline.db.models import Run

    run = session.get(Run, run_id)
    return sum(float(c.get("cost", 0.0)) for c in (run.counters or {}).values() if isinstance(c, dict)) if run else 0.0


def _facets(session: Session, ids: Sequence[int], params: dict[str, Any]) -> BatchOutcome:
    from threadline.ai.llm.facet_stage import facet_conversations

    runtime = _llm_runtime(session)
    if runtime is None:
        return BatchOutcome(skipped={cid: "no LLM configured" for cid in ids})
    budget = runtime.settings.run_budget
    budget_left = None if budget is None else budget - run_llm_spend(session, int(params["run_id"]))
    if budget_left is not None and budget_left <= 0:
        return BatchOutcome(stop_reason=f"LLM budget of {budget} reached; raise THREADLINE_LLM_RUN_BUDGET and resume")
    result = facet_conversations(session, ids, runtime, budget_left=budget_left)
    return BatchOutcome(
        done=result.done,
        skipped=dict(result.skipped),
        computed=result.computed,
        reused=result.reused,
        failed={int(f.conversation_id): (f.error_class, f.message, f.attempts) for f in result.failed},
        extra_counters=_cost_counters(result.usages, runtime.settings.prices),
        stop_reason=(
            f"{result.stopped_reason}; raise THREADLINE_LLM_RUN_BUDGET and resume" if result.stopped_reason else None
        ),
    )


def _themes(session: Session, run_id: int) -> dict[str, Any]:
    from sqlalchemy import select

    from threadline.db.models import Theme
    from threadline.themes.discover import discover_themes

    result = asdict(discover_themes(session, run_id))
    runtime = _llm_runtime(session)
    if runtime is not None and result["new_themes"]:
        from threadline.ai.llm.enrich import name_themes_with_llm

        new = list(session.execute(select(Theme.id).where(Theme.first_run_id == run_id, Theme.level == 1)).scalars())
        result.update(_cost_counters(name_themes_with_llm(session, run_id, new, runtime), runtime.settings.prices))
    return result


def _stories(session: Session, run_id: int) -> dict[str, Any]:
    from threadline.stories.build import build_stories

    result = asdict(build_stories(session, run_id, types=load_types(session, run_id)))
    runtime = _llm_runtime(session)
    if runtime is not None and result["stories"]:
        from threadline.ai.llm.enrich import write_stories_with_llm

        result.update(_cost_counters(write_stories_with_llm(session, run_id, runtime), runtime.settings.prices))
    return result


PerConversationStage = Callable[[Session, Sequence[int], dict[str, Any]], BatchOutcome]
WholeRunStage = Callable[[Session, int], dict[str, Any]]

PER_CONVERSATION: dict[str, PerConversationStage] = {
    "embed": _embed,
    "facets": _facets,
    "classify": _classify,
    "sleep": _sleep,
}
WHOLE_RUN: dict[str, WholeRunStage] = {"themes": _themes, "stories": _stories}

"""Runs: creation with membership history, phase bookkeeping and the in-process executor.

Every stage is a function from stored rows to stored rows (see `embed`, `classify`,
`themes.discover`, `stories.build`); this module only decides what to feed them and
records their results. Counters are written in the same transaction as the rows they
count, summed from each batch's own result object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, literal, select
from sqlalchemy.orm import Session

from threadline.config import EMBED_BATCH_SIZE
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Run, RunConversation, Source
from threadline.pipeline.classify import classify_conversations, load_types
from threadline.pipeline.embed import Embedder, embed_conversations
from threadline.stories.build import build_stories
from threadline.themes.discover import discover_themes

logger = logging.getLogger(__name__)

PHASES = ("embed", "classify", "themes", "stories")
PER_CONVERSATION_PHASES = ("embed", "classify")

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)


class RunError(RuntimeError):
    """A run could not be created or executed; the message says why."""


def create_run(
    session: Session, *, source: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> Run:
    """A queued run over the matching, non-deleted conversations; membership recorded as history."""
    filters = [Conversation.deleted_at.is_(None)]
    if source is not None:
        source_id = session.execute(select(Source.id).where(Source.name == source)).scalar()
        if source_id is None:
            raise RunError(f"no source named {source!r}; see `threadline status` for the sources")
        filters.append(Conversation.source_id == source_id)
    if since is not None:
        filters.append(Conversation.created_at >= since)
    if until is not None:
        filters.append(Conversation.created_at < until)
    params = {"source": source, "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
    run = Run(status="queued", params=params, counters={})
    session.add(run)
    session.flush()
    session.execute(
        RunConversation.__table__.insert().from_select(
            ["run_id", "conversation_id"], select(literal(run.id), Conversation.id).where(*filters)
        )
    )
    size = session.execute(select(func.count()).where(RunConversation.run_id == run.id)).scalar_one()
    run.counters = {"conversations": size}
    return run


def member_ids(session: Session, run_id: int) -> list[int]:
    return list(
        session.execute(
            select(RunConversation.conversation_id).where(RunConversation.run_id == run_id)
            .order_by(RunConversation.conversation_id)
        ).scalars()
    )  # fmt: skip


def _add_counters(run: Run, phase: str, values: dict[str, int]) -> None:
    counters = dict(run.counters or {})
    current = dict(counters.get(phase, {}))
    for key, value in values.items():
        current[key] = current.get(key, 0) + value
    counters[phase] = current
    run.counters = counters


def _set_phase(engine: Engine, run_id: int, phase: str) -> None:
    with session_scope(engine) as session:
        run = session.get(Run, run_id, with_for_update=True)
        assert run is not None
        run.phase = phase
        counters = dict(run.counters or {})
        counters.setdefault(phase, {})
        run.counters = counters


def execute_run(engine: Engine, run_id: int, embedder: Embedder, progress: ProgressCallback | None = None) -> Run:
    """Run every phase of `run_id` in this process; marks the run succeeded or failed."""
    with session_scope(engine) as session:
        run = session.get(Run, run_id, with_for_update=True)
        if run is None:
            raise RunError(f"no run {run_id}")
        run.status = "running"
        run.started_at = func.now()
        ids = member_ids(session, run_id)
    try:
        for phase in PER_CONVERSATION_PHASES:
            _set_phase(engine, run_id, phase)
            done = 0
            for start in range(0, len(ids), EMBED_BATCH_SIZE):
                batch = ids[start : start + EMBED_BATCH_SIZE]
                with session_scope(engine) as session:
                    counts = _run_batch(session, phase, batch, embedder)
                    run = session.get(Run, run_id, with_for_update=True)
                    assert run is not None
                    _add_counters(run, phase, counts)
                done += len(batch)
                if progress:
                    progress(phase, done, len(ids))
        for phase, stage in (("themes", _themes), ("stories", _stories)):
            _set_phase(engine, run_id, phase)
            with session_scope(engine) as session:
                counts = stage(session, run_id)
                run = session.get(Run, run_id, with_for_update=True)
                assert run is not None
                _add_counters(run, phase, counts)
            if progress:
                progress(phase, 1, 1)
    except Exception as exc:
        logger.exception("run %d failed", run_id)
        with session_scope(engine) as session:
            run = session.get(Run, run_id, with_for_update=True)
            assert run is not None
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"[:2000]
            run.finished_at = func.now()
        raise
    with session_scope(engine) as session:
        run = session.get(Run, run_id, with_for_update=True)
        assert run is not None
        run.status = "succeeded"
        run.phase = None
        run.finished_at = func.now()
    with session_scope(engine) as session:
        finished = session.get(Run, run_id)
        assert finished is not None
        return finished


def _run_batch(session: Session, phase: str, batch: list[int], embedder: Embedder) -> dict[str, int]:
    if phase == "embed":
        result = embed_conversations(session, batch, embedder)
        return {"done": result.done, "computed": result.computed, "reused": result.reused, "skipped": len(result.skipped)}
    result_types = classify_conversations(session, batch, embedder)
    return {"done": result_types.done, "computed": result_types.computed, "reused": result_types.reused,
            "skipped": len(result_types.skipped)}  # fmt: skip


def _themes(session: Session, run_id: int) -> dict[str, Any]:
    return asdict(discover_themes(session, run_id))


def _stories(session: Session, run_id: int) -> dict[str, Any]:
    return asdict(build_stories(session, run_id, types=load_types(session, run_id)))

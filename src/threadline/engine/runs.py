"""Runs: creation with membership history and work items, and the in-process executor.

Every stage is a function from stored rows to stored rows (see `threadline.stages`); runs
execute them as procrastinate jobs (see `jobs.py`, `batch.py`, `lifecycle.py`). `create_run` records the run, its membership,
one pending item per (per-conversation stage, conversation), its phases, and defers the
first advance job -- all in the caller's transaction, doing no pipeline work.
`execute_run` runs an in-process worker until the run ends (what `threadline run` does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, insert, literal, select
from sqlalchemy.orm import Session

from threadline.ai.embeddings import Embedder, set_process_embedder
from threadline.ai.llm.cost import unpriced_models
from threadline.config import LLMSettings, get_settings
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Run, RunConversation, RunItem, RunPhase
from threadline.engine import worker  # module, not name: worker -> jobs -> schedules -> runs imports it back
from threadline.engine.errors import RunError, RunRequestError
from threadline.engine.lifecycle import ITEM_COUNTERS, request_advance
from threadline.engine.llm import configured_llm
from threadline.engine.run_end import RunEndListener
from threadline.engine.scopes import get_or_create_scope, source_ids_by_name
from threadline.engine.stage import STAGES, is_per_conversation, planned_params, product_phases
from threadline.engine.status import RunStatus

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]  # (phase, done, total)

__all__ = [
    "RunError",
    "RunRequestError",
    "check_period",
    "create_run",
    "default_phases",
    "execute_run",
    "member_ids",
    "wait_for_run",
]


def default_phases() -> tuple[str, ...]:
    """The phases a run executes unless told otherwise: offline, or with LLM stages when an endpoint is configured."""
    return product_phases(llm_configured=get_settings().configured_llm() is not None)


def check_period(since: datetime | None, until: datetime | None) -> None:
    """Refuse a period whose start is not before its end (RunRequestError, before anything is written)."""
    if since is not None and until is not None and since >= until:
        raise RunRequestError(
            f"--since ({since.date().isoformat()}) must be before --until ({until.date().isoformat()}): "
            "the period would contain nothing"
        )


def _describe_filters(names: Sequence[str], since: datetime | None, until: datetime | None) -> str:
    parts = [f"source{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else "all sources"]
    if since is not None:
        parts.append(f"created on or after {since.isoformat()}")
    if until is not None:
        parts.append(f"created before {until.isoformat()}")
    return "; ".join(parts)


def check_llm_budget(llm: LLMSettings | None) -> None:
    """Refuse a run whose LLM budget could not hold: a model without a price would count as costing nothing."""
    if llm is None or llm.run_budget is None:
        return
    models = (llm.models.facets, llm.models.naming, llm.models.stories)
    missing = unpriced_models(models, llm.prices)
    if missing:
        raise RunError(
            f"the LLM budget ({llm.run_budget}) cannot hold: no price for model {', '.join(map(repr, missing))}; "
            "add it to THREADLINE_LLM_PRICES or remove THREADLINE_LLM_RUN_BUDGET"
        )


def create_run(
    session: Session,
    *,
    source: str | None = None,
    sources: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    phases: Sequence[str] | None = None,
    batch_size: int | None = None,
    options: dict[str, Any] | None = None,
) -> Run:
    """A queued run over the matching, non-deleted conversations of its scope, with its first job deferred.

    The scope is the set of named sources (`sources`, or the single `source`), or every
    source that exists now when none is named. A period whose start is not before its end,
    or one matching no conversation, raises `RunRequestError` before anything is written.
    `phases` and `options` (e.g. `{"sleep_ms": 20}` for a test stage) exist for tests and
    benchmarks; by default the product's phases run (`default_phases`). Nothing runs until
    a worker picks the job up, and nothing is visible to workers until the caller commits.
    """
    phases = tuple(phases) if phases is not None else default_phases()
    unknown = [p for p in phases if p not in STAGES]
    if unknown or not phases:
        raise RunError(f"unknown phases {unknown!r}")
    max_batch_size = get_settings().engine.max_batch_size
    if batch_size is not None and not 1 <= batch_size <= max_batch_size:
        raise RunError(f"batch size must be between 1 and {max_batch_size}")
    check_period(since, until)
    check_llm_budget(configured_llm())
    names = sorted(set(sources or ()) | ({source} if source else set()))
    source_ids = source_ids_by_name(session, names)
    filters: list[ColumnElement[bool]] = [Conversation.deleted_at.is_(None), Conversation.source_id.in_(source_ids)]
    if since is not None:
        filters.append(Conversation.created_at >= since)
    if until is not None:
        filters.append(Conversation.created_at < until)
    matching, period_start, period_end = session.execute(
        select(func.count(), func.min(Conversation.created_at), func.max(Conversation.created_at)).where(*filters)
    ).one()
    if not matching:
        if not source_ids:
            raise RunRequestError("there are no sources yet: import conversations first (`threadline import`)")
        raise RunRequestError(f"no conversation matches {_describe_filters(names, since, until)}: nothing to run")
    scope = get_or_create_scope(session, source_ids)
    params: dict[str, Any] = {
        "source": names[0] if len(names) == 1 else None,  # kept for readers of earlier runs' params
        "sources": names,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    if phases != default_phases():
        params["phases"] = list(phases)
    if batch_size is not None:  # else each stage's default (`lifecycle.default_batch_size`)
        params["batch_size"] = batch_size
    params.update(planned_params(phases))  # e.g. the embedding backend: fixed for the run's lifetime
    params.update(options or {})
    run = Run(
        status=RunStatus.QUEUED,
        params=params,
        counters={},
        scope_id=scope.id,
        period_start=period_start,
        period_end=period_end,
    )
    session.add(run)
    session.flush()
    session.execute(
        insert(RunConversation).from_select(
            ["run_id", "conversation_id"], select(literal(run.id), Conversation.id).where(*filters)
        )
    )
    size = int(matching)
    counters: dict[str, Any] = {"conversations": size}
    for position, phase in enumerate(phases):
        session.add(RunPhase(run_id=run.id, phase=phase, position=position, state="pending"))
        if is_per_conversation(phase):
            session.execute(
                insert(RunItem).from_select(
                    ["run_id", "stage", "conversation_id"],
                    select(literal(run.id), literal(phase), RunConversation.conversation_id).where(
                        RunConversation.run_id == run.id
                    ),
                )
            )
            counters[phase] = {key: (size if key == "total" else 0) for key in ITEM_COUNTERS}
        else:
            counters[phase] = {"total": 1, "done": 0, "skipped": 0, "dead": 0, "retries": 0}
    run.counters = counters
    session.flush()
    request_advance(session, run)
    return run


def member_ids(session: Session, run_id: int) -> list[int]:
    return list(
        session.execute(
            select(RunConversation.conversation_id)
            .where(RunConversation.run_id == run_id)
            .order_by(RunConversation.conversation_id)
        ).scalars()
    )


def _progress_reader(engine: Engine, run_id: int, progress: ProgressCallback | None) -> Callable[[], bool]:
    """A poll function for the in-process worker: reports progress, True once the run has ended."""

    def poll() -> bool:
        with session_scope(engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                return True
            if progress is not None:
                for phase, values in (run.counters or {}).items():
                    if isinstance(values, dict) and "total" in values:
                        finished = sum(int(values.get(k, 0)) for k in ("done", "skipped", "dead"))
                        progress(phase, finished, int(values["total"]))
            return RunStatus(run.status).is_final

    return poll


def execute_run(
    engine: Engine,
    run_id: int,
    embedder: Embedder | None = None,
    progress: ProgressCallback | None = None,
    *,
    concurrency: int | None = None,
) -> Run:
    """Run an in-process worker until `run_id` has ended (succeeded, failed or stopped).

    The worker also executes other queued jobs in the meantime (it is an ordinary worker).
    The embedder, when given, is the one this process's jobs use.
    """
    concurrency = concurrency or get_settings().engine.worker_concurrency
    with session_scope(engine) as session:
        if session.get(Run, run_id) is None:
            raise RunError(f"no run {run_id}")
    if embedder is not None:
        set_process_embedder(embedder)
    poll = _progress_reader(engine, run_id, progress)
    with RunEndListener(engine) as run_end:  # listening before the first poll: no end goes unnoticed
        if not poll():
            asyncio.run(
                worker.run_worker_async(
                    engine, concurrency=concurrency, until=poll, wake=run_end.wait, install_signal_handlers=False
                )
            )
    with session_scope(engine) as session:
        finished = session.get(Run, run_id)
        assert finished is not None
        return finished


def wait_for_run(engine: Engine, run_id: int, timeout_s: float, poll_s: float = 0.5) -> Run:
    """Block until the run ends or `timeout_s` passes (for scripts and tests); returns its row."""
    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope(engine) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise RunError(f"no run {run_id}")
            if RunStatus(run.status).is_final or time.monotonic() > deadline:
                return run
        time.sleep(poll_s)

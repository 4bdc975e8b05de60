"""Runs and dead letters through the durable-run service (`threadline.pipeline.service`).

The service module is imported lazily so the API imports (and serves everything else)
on a checkout where durable runs are not installed yet; run endpoints then answer 503.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.db.models import Run

ACTIVE_STATUSES = ("queued", "running", "stopping")


class RunsUnavailable(RuntimeError):
    """Durable runs (threadline.pipeline.service) are not available in this installation."""


def service() -> ModuleType:
    try:
        return importlib.import_module("threadline.pipeline.service")
    except ImportError as exc:
        raise RunsUnavailable("durable runs are not installed (threadline.pipeline.service is missing)") from exc


def run_error_class() -> type[Exception]:
    """The service's `RunError` (what it raises for a refused start or transition)."""
    error = getattr(service(), "RunError", None)
    if error is None:
        from threadline.pipeline.runs import RunError as error
    return error


def normalize_run(view: dict[str, Any]) -> dict[str, Any]:
    """The service's run view in the API's shape (dead letters as a count, progress in [0, 1])."""
    data = dict(view)
    dead = data.get("dead_letters")
    data["dead_letters"] = len(dead) if isinstance(dead, list | tuple) else int(dead or 0)
    data["progress"] = min(1.0, max(0.0, float(data.get("progress") or 0.0)))
    data["params"] = data.get("params") or {}
    data["counters"] = data.get("counters") or {}
    if "conversations" not in data:
        data["conversations"] = int(data["counters"].get("conversations", 0) or 0)
    return data


def run_view(session: Session, run_id: int) -> dict[str, Any] | None:
    view = service().run_view(session, run_id)
    return normalize_run(view) if view is not None else None


def list_runs(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    return [normalize_run(v) for v in service().list_runs(session, limit=limit, offset=offset)]


def current_run(session: Session) -> dict[str, Any] | None:
    """The newest queued/running/stopping run, else the newest run of any status."""
    run_id = session.execute(
        select(Run.id).where(Run.status.in_(ACTIVE_STATUSES)).order_by(Run.id.desc()).limit(1)
    ).scalar() or session.execute(select(Run.id).order_by(Run.id.desc()).limit(1)).scalar()
    if run_id is None:
        return None
    try:
        return run_view(session, run_id)
    except RunsUnavailable:
        run = session.get(Run, run_id)
        assert run is not None
        return normalize_run(
            {"id": run.id, "status": run.status, "phase": run.phase, "params": run.params, "counters": run.counters,
             "progress": 1.0 if run.status == "succeeded" else 0.0, "created_at": run.created_at,
             "started_at": run.started_at, "finished_at": run.finished_at, "error": run.error}
        )  # fmt: skip

"""A run's end, announced through PostgreSQL: whoever waits for a run wakes when it ends, not at its next poll.

The transaction that makes a run final (succeeded, failed, stopped) also sends a NOTIFY on
`RUN_END_CHANNEL` with the run id; PostgreSQL delivers it at commit, to listeners on any
machine. `RunEndListener` is the waiting side: `wait(timeout_s)` returns as soon as any run
ends (the caller then reads the run's row) or after `timeout_s`, so polling stays as the
fallback and a lost notification costs one poll interval, never correctness.

Why: `threadline run` (and `execute_run`) polled the run's row every
`engine.worker_poll_interval_s` (1 s), so a finished run returned half a second late on
average; a shorter poll would cost a query per tick for the whole run.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)

RUN_END_CHANNEL = "threadline_run_end"  # PostgreSQL NOTIFY channel; the payload is the run id

_NOTIFY_SQL = text("SELECT pg_notify(:channel, :payload)")


def announce_run_end(session: Session, run_id: int) -> None:
    """Tell listeners that `run_id` ends (delivered when the caller's transaction commits, dropped on rollback)."""
    session.execute(_NOTIFY_SQL, {"channel": RUN_END_CHANNEL, "payload": str(run_id)})


class RunEndListener:
    """A dedicated connection LISTENing on `RUN_END_CHANNEL` (a context manager; close() releases it)."""

    def __init__(self, engine: Engine) -> None:
        pooled = engine.raw_connection()
        connection = pooled.driver_connection
        if not isinstance(connection, psycopg.Connection):
            pooled.close()
            raise TypeError("the run-end listener needs the psycopg driver")
        self._connection: psycopg.Connection[Any] = connection
        pooled.detach()  # its own connection for the listener's lifetime: never handed back to the pool
        self._pooled = pooled
        self._connection.autocommit = True
        self._connection.execute(f"LISTEN {RUN_END_CHANNEL}")

    def wait(self, timeout_s: float) -> bool:
        """Block until some run ends (True) or `timeout_s` seconds pass (False); queued notifications count."""
        for _ in self._connection.notifies(timeout=timeout_s, stop_after=1):
            return True
        return False

    def close(self) -> None:
        try:
            self._pooled.close()
        except Exception:  # a connection already broken has nothing left to release
            logger.debug("run-end listener connection was already closed")

    def __enter__(self) -> RunEndListener:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["RUN_END_CHANNEL", "RunEndListener", "announce_run_end"]

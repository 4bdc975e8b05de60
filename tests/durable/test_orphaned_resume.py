"""A run left `running` by a process or database that died can be resumed (issue 15, finding 7).

Nothing would ever finish such a run: its worker is gone. `resume_run` accepts it when no
worker has sent a heartbeat within the stalled-worker timeout, and still refuses while one
lives (that worker's takeover of stalled jobs finishes the run). Real embedded PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support import EXAMPLES

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Run
from threadline.engine.errors import RunError
from threadline.engine.runs import create_run
from threadline.engine.service import resume_run
from threadline.engine.status import RunStatus


def _orphaned_run(engine) -> int:
    """A run marked running, as a worker leaves it when it (or the database) is killed mid-run."""
    import_file(engine, EXAMPLES, source_name="demo")
    with session_scope(engine) as session:
        run = create_run(session, source="demo")
        run.status = RunStatus.RUNNING
        return run.id


def test_a_running_run_with_no_live_worker_is_resumed(db_engine, db_session) -> None:
    run_id = _orphaned_run(db_engine)
    with db_engine.begin() as conn:  # a worker that died long ago: its heartbeat is stale
        conn.execute(text("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour')"))
    with session_scope(db_engine) as session:
        generation = session.get(Run, run_id).generation
        resumed = resume_run(session, run_id)
        assert resumed.status == RunStatus.RUNNING and resumed.generation == generation + 1


def test_a_running_run_is_not_resumed_while_a_worker_lives(db_engine, db_session) -> None:
    run_id = _orphaned_run(db_engine)
    with db_engine.begin() as conn:
        conn.execute(text("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now())"))
    with session_scope(db_engine) as session, pytest.raises(RunError, match="no live worker"):
        resume_run(session, run_id)

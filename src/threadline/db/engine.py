"""Engine and sessions: resolve the database (embedded or external), migrate on first use."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from threadline.config import DatabaseSettings, Settings, get_settings

if TYPE_CHECKING:  # for annotations only: the ORM loads when a session is first opened (see `session_scope`)
    from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)


def resolve_database_url(settings: Settings, *, ensure: bool = True) -> str:
    """The SQLAlchemy URL to use: THREADLINE_DATABASE_URL, or the embedded server (started now).

    The embedded server's database is created when missing, unless `ensure` is False (see `get_engine`).
    """
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    from threadline.db.embedded import start_embedded  # loaded only when the embedded server is used (start-up)

    return start_embedded(settings.embedded_pgdata, idle_grace_s=settings.database.embedded_idle_grace_s, ensure=ensure)


def make_engine(url: str, limits: DatabaseSettings | None = None) -> Engine:
    """An engine for `url` with the pool size and connect timeout of `limits` (default: the process's settings)."""
    limits = limits or get_settings().database
    return create_engine(
        url,
        pool_size=limits.pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": limits.connect_timeout_s},
    )


MIGRATION_VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


@lru_cache(maxsize=1)
def migration_heads() -> frozenset[str]:
    """The head revisions of the migrations, read from the files' `revision`/`down_revision` lines.

    A cheap stand-in for Alembic's script directory (which imports Alembic and every migration):
    every command checks the schema, and a database already at the head needs nothing more.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in MIGRATION_VERSIONS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision:
            revisions.add(revision.group(1))
        if down:
            parents.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - parents)


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is at the migrations' head (False when unsure: then Alembic decides)."""
    heads = migration_heads()
    if len(heads) != 1:
        return False
    try:
        with engine.connect() as conn:
            found = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except ProgrammingError:  # no alembic_version table: a fresh database
        return False
    return found == heads


@lru_cache(maxsize=4)
def _engine_for(url: str, migrate: bool, pool_size: int, connect_timeout_s: int) -> Engine:
    engine = make_engine(url, DatabaseSettings(pool_size=pool_size, connect_timeout_s=connect_timeout_s))
    if migrate and not at_head(engine):
        from threadline.db.migrate import upgrade  # Alembic loads only when an engine is first made (start-up)

        upgrade(engine)
    return engine


def get_engine(settings: Settings | None = None, *, migrate: bool = True) -> Engine:
    """The process-wide engine for these settings, migrated to the newest schema on first use.

    On the embedded server, the schema check is the first connection: the maintenance-database
    check (`ensure_embedded_database`, a connection of its own) runs only when that connection
    fails, e.g. on a fresh data directory, and the engine is then made once more.
    """
    settings = settings or get_settings()
    limits = settings.database
    if settings.database_url or not migrate:  # no schema check, so no first connection to learn from
        return _engine_for(resolve_database_url(settings), migrate, limits.pool_size, limits.connect_timeout_s)
    url = resolve_database_url(settings, ensure=False)
    try:
        return _engine_for(url, migrate, limits.pool_size, limits.connect_timeout_s)
    except OperationalError:
        # loaded only on this path: a read command on an existing database never needs it (start-up)
        from threadline.db.embedded import ensure_embedded_database

        ensure_embedded_database(settings.embedded_pgdata)  # the same error again when the database was there
        return _engine_for(url, migrate, limits.pool_size, limits.connect_timeout_s)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    # imported when a session is first opened, not at start-up: the read commands read through `read_scope`
    from sqlalchemy.orm import Session

    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_scope(engine: Engine) -> Iterator[Connection]:
    """A Core connection for reads in one transaction, rolled back at the end (it writes nothing).

    What the read commands whose queries are Core statements (`status`, `runs list`, `themes`, `stories`)
    use instead of `session_scope`: no ORM session, so the CLI never loads `sqlalchemy.orm`.
    """
    with engine.connect() as conn:
        yield conn

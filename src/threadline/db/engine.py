"""Engine and sessions: resolve the database (embedded or external), migrate on first use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from threadline.config import DatabaseSettings, Settings, get_settings

logger = logging.getLogger(__name__)


def resolve_database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: THREADLINE_DATABASE_URL, or the embedded server (started now)."""
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    from threadline.db.embedded import start_embedded  # loaded only when the embedded server is used (start-up)

    return start_embedded(settings.embedded_pgdata, idle_grace_s=settings.database.embedded_idle_grace_s)


def make_engine(url: str, limits: DatabaseSettings | None = None) -> Engine:
    """An engine for `url` with the pool size and connect timeout of `limits` (default: the process's settings)."""
    limits = limits or get_settings().database
    return create_engine(
        url,
        pool_size=limits.pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": limits.connect_timeout_s},
    )


@lru_cache(maxsize=4)
def _engine_for(url: str, migrate: bool, pool_size: int, connect_timeout_s: int) -> Engine:
    engine = make_engine(url, DatabaseSettings(pool_size=pool_size, connect_timeout_s=connect_timeout_s))
    if migrate:
        from threadline.db.migrate import upgrade  # Alembic loads only when an engine is first made (start-up)

        upgrade(engine)
    return engine


def get_engine(settings: Settings | None = None, *, migrate: bool = True) -> Engine:
    """The process-wide engine for these settings, migrated to the newest schema on first use."""
    settings = settings or get_settings()
    limits = settings.database
    return _engine_for(resolve_database_url(settings), migrate, limits.pool_size, limits.connect_timeout_s)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

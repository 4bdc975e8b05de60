"""Engine and sessions: resolve the database (embedded or external), migrate on first use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from threadline.config import Settings, get_settings

logger = logging.getLogger(__name__)

POOL_SIZE = 5  # connections per process: a CLI or worker needs a few, the API's threadpool shares them
CONNECT_TIMEOUT_S = 10  # seconds: fail fast with a clear error instead of hanging on a wrong URL


def resolve_database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: THREADLINE_DATABASE_URL, or the embedded server (started now)."""
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    from threadline.db.embedded import start_embedded  # loaded only when the embedded server is used (start-up)

    return start_embedded(settings.embedded_pgdata)


def make_engine(url: str) -> Engine:
    """An engine for `url` with bounded pool and connect timeout."""
    return create_engine(
        url,
        pool_size=POOL_SIZE,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


@lru_cache(maxsize=4)
def _engine_for(url: str, migrate: bool) -> Engine:
    engine = make_engine(url)
    if migrate:
        from threadline.db.migrate import upgrade  # Alembic loads only when an engine is first made (start-up)

        upgrade(engine)
    return engine


def get_engine(settings: Settings | None = None, *, migrate: bool = True) -> Engine:
    """The process-wide engine for these settings, migrated to the newest schema on first use."""
    settings = settings or get_settings()
    return _engine_for(resolve_database_url(settings), migrate)


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

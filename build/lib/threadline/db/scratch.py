"""Scratch databases: an isolated, migrated database on the same server, dropped afterwards.

Used by `threadline eval` so that evaluating a labelled file never mixes its
conversations, themes or cached analyses with the team's real data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from threadline.config import Settings, get_settings
from threadline.db.embedded import ensure_database
from threadline.db.engine import make_engine, resolve_database_url
from threadline.db.migrate import upgrade


@contextmanager
def scratch_engine(settings: Settings | None = None, prefix: str = "threadline_scratch") -> Iterator[Engine]:
    """A migrated engine on a fresh database `<prefix>_<random>`; the database is dropped on exit."""
    url = make_url(resolve_database_url(settings or get_settings()))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    maintenance = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    ensure_database(maintenance, name)
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

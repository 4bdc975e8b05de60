"""Test fixtures: one embedded PostgreSQL per test session, a fresh database per test.

Each test that asks for `db_engine` gets its own database cloned from a migrated
template (CREATE DATABASE ... TEMPLATE), so tests are isolated without truncation and
without mocks. `db_url` is the SQLAlchemy URL of that database, for subprocess tests
that point THREADLINE_DATABASE_URL at it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from support import cloned_database

from threadline.config import get_settings
from threadline.db.embedded import start_embedded
from threadline.db.engine import make_engine
from threadline.db.migrate import upgrade

TEMPLATE_DB = "threadline_template"

# pytest keeps the temporary directories of the last three sessions under one root and deletes
# older ones, a running session's embedded PostgreSQL included. Give each checkout its own root,
# so test sessions of several checkouts on one machine never delete each other's databases.
_CHECKOUT = hashlib.sha256(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:12]
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(Path(tempfile.gettempdir()) / f"threadline-tests-{_CHECKOUT}"))
Path(os.environ["PYTEST_DEBUG_TEMPROOT"]).mkdir(parents=True, exist_ok=True)

# A command that starts an embedded server in a test's own home stops it when it ends, instead of
# leaving it up for the idle grace period (dozens of idle servers would outlive their tests).
# The idle-grace tests set their own value.
os.environ.setdefault("THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S", "0")

# The suite embeds with the torch reference backend (its vectors are what existing expectations were
# measured on, and building the ONNX model costs ~15-25 s per fresh THREADLINE_HOME). The backend
# tests (tests/ai/test_onnx_embeddings.py) choose ONNX explicitly, with one build per session.
os.environ.setdefault("THREADLINE_EMBEDDING_BACKEND", "torch")


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings tree afresh (a process reads it once; tests change the environment)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Maintenance URI (libpq form) of a session-wide embedded server with a migrated template."""
    pgdata = tmp_path_factory.mktemp("pg") / "pgdata"
    template_url = start_embedded(pgdata, TEMPLATE_DB)
    engine = make_engine(template_url)
    upgrade(engine)
    engine.dispose()
    url = make_url(template_url)
    maintenance = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    yield maintenance


@pytest.fixture()
def db_url(pg_server: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, migrated database for this test (dropped afterwards)."""
    with cloned_database(pg_server, TEMPLATE_DB) as url:
        yield url


@pytest.fixture()
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session on the test's own database; the test decides when to commit."""
    with Session(db_engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def embedder():
    """The real local embedder (weights verified), loaded once per session."""
    from threadline.ai.embeddings import get_embedder

    return get_embedder()


@pytest.fixture()
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `threadline` command against the test database."""
    env = dict(os.environ)
    env.update(THREADLINE_DATABASE_URL=db_url, THREADLINE_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    return env

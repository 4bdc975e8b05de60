"""API test fixtures: a database holding the sample after one finished run, cloned per test.

The populated database is built once per test session (import the sample, run the
pipeline in-process) and then used as a template, so each test gets its own copy in
about a second and may write to it freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from support import EXAMPLES, cloned_database, database_url  # noqa: E402

from threadline.config import Settings
from threadline.db.embedded import ensure_database
from threadline.db.engine import make_engine

POPULATED_TEMPLATE = "threadline_api_populated"


@pytest.fixture(scope="session")
def populated_template(pg_server: str, embedder) -> str:
    """Name of a database with the sample imported and one succeeded run (built once)."""
    from threadline.connectors.files.importer import import_file
    from threadline.db.engine import session_scope
    from threadline.engine.runs import create_run, execute_run

    ensure_database(pg_server, POPULATED_TEMPLATE, template="threadline_template")
    engine = make_engine(database_url(pg_server, POPULATED_TEMPLATE))
    try:
        import_file(engine, EXAMPLES, source_name="demo")
        with session_scope(engine) as session:
            run_id = create_run(session).id
        assert execute_run(engine, run_id, embedder).status == "succeeded"
    finally:
        engine.dispose()
    return POPULATED_TEMPLATE


@pytest.fixture()
def api_db_url(pg_server: str, populated_template: str) -> Iterator[str]:
    with cloned_database(pg_server, populated_template, prefix="api") as url:
        yield url


@pytest.fixture()
def api_engine(api_db_url: str) -> Iterator[Engine]:
    engine = make_engine(api_db_url)
    yield engine
    engine.dispose()


@pytest.fixture()
def api_settings(api_db_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=api_db_url)


@pytest.fixture()
def app(api_settings: Settings, api_engine: Engine):
    from threadline.app import create_app

    return create_app(api_settings, engine=api_engine)


@pytest.fixture()
def token(api_engine: Engine) -> str:
    from threadline.db.engine import session_scope
    from threadline.server.tokens import create_token

    with session_scope(api_engine) as session:
        return create_token(session, "tests")


@pytest.fixture()
def client(app) -> Iterator[TestClient]:
    """An unauthenticated client (base_url https so Secure cookies would round-trip too)."""
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture()
def authed(app, token: str) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}, follow_redirects=False) as test_client:
        yield test_client

"""Browser-test fixtures: the real app under uvicorn on an ephemeral loopback port, a real worker, Chromium.

The server runs in a thread of the test process (uvicorn.Server, port 0, so no port race);
the worker is a `threadline worker` subprocess against the same database, as in production.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium_browser, served
from sqlalchemy import Engine
from support import EXAMPLES, REPO, SCREENSHOTS, WORKER_STOP_TIMEOUT_S, stop_process  # noqa: E402,F401

from threadline.config import Settings


@pytest.fixture()
def sample_engine(db_engine: Engine) -> Engine:
    """The test database with the synthetic sample imported (no run yet)."""
    from threadline.connectors.files.importer import import_file

    import_file(db_engine, EXAMPLES, source_name="demo")
    return db_engine


@pytest.fixture()
def web_token(sample_engine: Engine) -> str:
    from threadline.db.engine import session_scope
    from threadline.server.tokens import create_token

    with session_scope(sample_engine) as session:
        return create_token(session, "browser")


@pytest.fixture()
def live_server(sample_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[str]:
    """Base URL of the app served by uvicorn on 127.0.0.1:<ephemeral>."""
    from threadline.app import create_app

    with served(create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=sample_engine)) as url:
        yield url


@pytest.fixture()
def worker(cli_env: dict[str, str], sample_engine: Engine) -> Iterator[subprocess.Popen]:
    """A `threadline worker` process on the test database; stopped gracefully afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "threadline.cli.main", "worker", "--concurrency", "1"],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    stop_process(process, signal.SIGINT, timeout_s=WORKER_STOP_TIMEOUT_S)
    if process.stderr:
        process.stderr.close()


@pytest.fixture()
def browser():
    with chromium_browser() as instance:
        yield instance

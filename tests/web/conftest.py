"""Browser-test fixtures: the real app under uvicorn on an ephemeral loopback port, a real worker, Chromium.

The server runs in a thread of the test process (uvicorn.Server, port 0, so no port race);
the worker is a `threadline worker` subprocess against the same database, as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine
from support import EXAMPLES, REPO, SCREENSHOTS, WORKER_STOP_TIMEOUT_S, stop_process  # noqa: E402,F401

from threadline.config import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 30  # seconds for uvicorn to bind: it takes well under one


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

    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=sample_engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=SERVER_START_TIMEOUT_S)


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
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()

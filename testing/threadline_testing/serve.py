"""Serve an ASGI app under uvicorn on 127.0.0.1 (ephemeral port) in a background thread.

Used by the end-to-end test and the benchmark, so the client talks to the stand-in over real
sockets exactly as it would to Intercom.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

STARTUP_TIMEOUT_SECONDS = 10.0  # uvicorn binds in milliseconds; longer means it failed
SHUTDOWN_GRACE_SECONDS = 1  # hanging requests are cut after this on teardown
POLL_SECONDS = 0.01  # how often startup/shutdown progress is checked


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` for the duration of the block; yields its base URL (http://127.0.0.1:PORT)."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="intercom-standin", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Intercom stand-in did not start")
        time.sleep(POLL_SECONDS)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_TIMEOUT_SECONDS)

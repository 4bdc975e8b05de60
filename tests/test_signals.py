"""`serve` and `worker` stop on SIGTERM as on Ctrl-C, and take the embedded server they started with them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_embedded import postgres_processes

START_TIMEOUT_S = 120  # seconds: a cold embedded start plus migrations on a loaded CI machine
STOP_TIMEOUT_S = 60  # seconds: graceful shutdown, then the last holder stops PostgreSQL


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("name", ["serve", "worker"])
def test_sigterm_stops_the_process_and_its_embedded_server(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    port = _free_port()
    command = ["serve", "--port", str(port)] if name == "serve" else ["worker"]
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env.update(THREADLINE_HOME=str(home), THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S="0", PYTHONUNBUFFERED="1")
    log = tmp_path / "out.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "threadline.cli.main", *command], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        pgdata = (home / "pgdata").resolve()
        assert _wait_for(lambda: bool(postgres_processes(pgdata)), START_TIMEOUT_S), log.read_text()[-2000:]
        ready = (lambda: _accepts(port)) if name == "serve" else (lambda: "worker started" in log.read_text())
        assert _wait_for(ready, START_TIMEOUT_S), log.read_text()[-2000:]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
        assert _wait_for(lambda: not postgres_processes(pgdata), STOP_TIMEOUT_S), "PostgreSQL outlived its owner"
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

"""Paths and commands shared by tests (import as `from support import ...`)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from threadline.db.embedded import ensure_database

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples" / "conversations.jsonl"
SCREENSHOTS = REPO / "tests" / "web" / "screenshots"  # browser tests save their pages here (gitignored)


def threadline_command() -> list[str]:
    """The `threadline` CLI of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "threadline.cli.main"]


@contextmanager
def worker_process(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """A real `threadline worker` subprocess logging to `log` (SIGTERM, then SIGKILL, at exit)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*threadline_command(), "worker", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process(process, signal.SIGTERM, timeout_s=WORKER_STOP_TIMEOUT_S)


WORKER_STOP_TIMEOUT_S = 30  # seconds for a worker to finish in-flight jobs after its stop signal before it is killed


def stop_process(process: subprocess.Popen, stop_signal: int, *, timeout_s: float) -> None:
    """Send `stop_signal` to a still-running process, wait up to `timeout_s` seconds, then kill it."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_clones = itertools.count()


def database_url(maintenance: str, name: str) -> str:
    """SQLAlchemy URL of database `name` on the server behind the libpq `maintenance` URI."""
    return (
        make_url(maintenance).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    )


@contextmanager
def cloned_database(maintenance: str, template: str, prefix: str = "test") -> Iterator[str]:
    """A fresh database copied from `template` (CREATE DATABASE ... TEMPLATE), dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{next(_clones)}"
    ensure_database(maintenance, name, template=template)
    try:
        yield database_url(maintenance, name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKEND_EXIT_TIMEOUT_S = 30.0  # a closed connection's server process ends within this, even on a loaded machine


def close_for_real(holder: Connection, engine: Engine) -> None:
    """Close `holder`'s server session as a dying process would, and wait until the server has ended it.

    `invalidate()` closes the socket, but the server notices and releases the session's advisory
    locks a moment later; a check made in between would still see them held.
    """
    pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    holder.invalidate()
    deadline = time.monotonic() + BACKEND_EXIT_TIMEOUT_S
    with engine.connect() as probe:
        while probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).scalar_one():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"server process {pid} still alive {BACKEND_EXIT_TIMEOUT_S} s after its connection closed"
                )
            time.sleep(0.02)
            probe.rollback()

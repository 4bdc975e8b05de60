"""Helpers for durable-run tests: synthetic conversations, worker subprocesses, waiting."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from support import worker_process

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Run

PROBLEMS = [
    "I cannot export my invoices to PDF, the export button spins forever",
    "Login with Google SSO fails with an error about the redirect URL",
    "The mobile app crashes when I upload a photo from the gallery",
    "Please add dark mode to the dashboard, my eyes hurt at night",
    "Billing charged us twice this month for the same seats",
    "Slack integration stopped posting notifications to our channel",
    "CSV import rejects files with semicolons as separators",
    "Search does not find customers by their phone number",
]
TAILS = ["Thanks.", "Any idea?", "This is urgent for us.", "Happened again today.", "Can you help?", ""]

# Quick takeover of a killed worker (seconds), and no niceness: these tests time durability, not priority.
FAST_WORKER = ("--heartbeat", "1", "--stalled-after", "4", "--nice", "0")


def threadline_command() -> list[str]:
    return [sys.executable, "-m", "threadline.cli.main"]


def make_conversations(engine: Engine, tmp_path: Path, count: int, source: str = "synth", seed: int = 7) -> list[int]:
    """Import `count` short synthetic conversations; returns their ids in order."""
    rng = random.Random(seed)
    path = tmp_path / f"{source}.jsonl"
    with path.open("w") as handle:
        for i in range(count):
            problem = PROBLEMS[i % len(PROBLEMS)]
            text_ = f"{problem} (account {rng.randint(1, 10_000)}). {rng.choice(TAILS)}"
            record = {
                "id": f"{source}-{i}",
                "created_at": f"2026-10-{1 + i % 28:02d}T09:00:00+00:00",
                "customer": {"id": f"u-{i % 97}"},
                "messages": [
                    {"author": "customer", "text": text_},
                    {"author": "agent", "text": "Thanks, we are looking into it."},
                ],
            }
            handle.write(json.dumps(record) + "\n")
    result = import_file(engine, path, source_name=source)
    assert result.ok, result.report.problems[:3]
    with session_scope(engine) as session:
        return list(session.execute(select(Conversation.id).order_by(Conversation.id)).scalars())


def worker_env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = dict(cli_env)
    env.update(HF_HUB_OFFLINE="1", THREADLINE_RETRY_BASE_DELAY_S="0.2", THREADLINE_LOG_LEVEL="INFO")
    env.pop("THREADLINE_FAULTS", None)
    env.update(extra)
    return env


worker = worker_process  # the durable tests' name for it


def run_cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*threadline_command(), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"threadline {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def run_status(engine: Engine, run_id: int) -> str:
    with session_scope(engine) as session:
        return session.execute(select(Run.status).where(Run.id == run_id)).scalar_one()


def item_states(engine: Engine, run_id: int, stage: str) -> dict[str, int]:
    with session_scope(engine) as session:
        rows = session.execute(
            text("SELECT state, count(*) FROM run_items WHERE run_id = :r AND stage = :s GROUP BY state"),
            {"r": run_id, "s": stage},
        ).all()
    return {state: int(n) for state, n in rows}


def doing_jobs(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")).scalar_one()


def tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


__all__ = ["os"]

"""Exports from several processes and through a crash: one tracker item per story, whatever happens.

- Two `threadline export` processes exporting the same 50 stories at the same moment create
  exactly 50 items (the UNIQUE link row plus the per-story advisory lock).
- The exporting process is SIGKILLed right after the tracker created an item (a stand-in hook
  kills it before the answer leaves, so the local commit never happens); exporting again finds
  the item by its marker and creates none.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from cases import CASES, Case
from seed import seed_stories
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.trackers.common import Faults

from threadline.db.models import TrackerLink
from threadline.exporters.trackers import add_tracker

PROCESS_TIMEOUT_S = 300  # one export of 50 stories takes seconds; this only bounds a hang
STORIES = 50
OVERLAP_DELAY_S = 0.05  # s: added to every stand-in answer in the concurrency test


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def _export_cmd(story_ids: list[int]) -> list[str]:
    return [sys.executable, "-m", "threadline.cli.main", "export", "--tracker", "t", "--json", *map(str, story_ids)]


def _env(cli_env: dict[str, str], case: Case) -> dict[str, str]:
    return {**cli_env, **case.env()}


def _setup(db_engine: Any, case: Case, url: str, count: int) -> list[int]:
    with Session(db_engine) as session, session.begin():
        add_tracker(session, case.kind, "t", case.values(url))
    return seed_stories(db_engine, count)


def test_two_processes_exporting_the_same_50_stories_create_exactly_50_items(db_engine, cli_env, case, request) -> None:
    # every answer a little late, so the two processes' exports of a story overlap at the tracker
    server = request.getfixturevalue(case.fixture)(faults=Faults(delay_share=1.0, delay_seconds=OVERLAP_DELAY_S))
    story_ids = _setup(db_engine, case, server.url, STORIES)
    env = _env(cli_env, case)
    processes = [
        subprocess.Popen(_export_cmd(story_ids), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=PROCESS_TIMEOUT_S) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in results]
    assert len(case.items(server.world)) == STORIES
    if case.kind != "linear":  # Linear's count includes the evidence attachments
        assert server.stats.created == STORIES
    with Session(db_engine) as session:
        keys = session.execute(select(TrackerLink.item_key)).scalars().all()
    assert len(keys) == STORIES and len(set(keys)) == STORIES and None not in keys


def test_killed_between_the_trackers_create_and_the_local_commit_still_one_item(
    db_engine, cli_env, case, request
) -> None:
    victim: list[subprocess.Popen[str]] = []

    def kill_exporter(_key: object) -> None:
        if victim:
            process = victim.pop()
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=PROCESS_TIMEOUT_S)

    server = request.getfixturevalue(case.fixture)(after_create=kill_exporter)
    story_ids = _setup(db_engine, case, server.url, 1)
    env = _env(cli_env, case)
    process = subprocess.Popen(
        _export_cmd(story_ids), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    victim.append(process)
    process.communicate(timeout=PROCESS_TIMEOUT_S)
    assert process.returncode == -signal.SIGKILL
    assert len(case.items(server.world)) == 1
    with Session(db_engine) as session:
        link = session.execute(select(TrackerLink)).scalar_one()
        assert link.item_key is None and link.create_attempted_at is not None  # reserved, never committed

    again = subprocess.run(_export_cmd(story_ids), env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert again.returncode == 0, again.stderr[-2000:]
    assert '"found": 1' in again.stdout and '"created": 0' in again.stdout
    assert len(case.items(server.world)) == 1
    with Session(db_engine) as session:
        assert session.execute(select(TrackerLink.item_key)).scalar_one() is not None

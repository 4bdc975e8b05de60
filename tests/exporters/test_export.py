"""Exporting stories to GitHub, Jira and Linear stand-ins (every exchange validated against the vendor's spec).

For each tracker: the first export creates one item; a re-export creates none and updates the
counts; a person's edit of Threadline's block is left alone; a refused token fails in one line
naming the tracker with nothing written; a 429 with Retry-After is waited out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cases import CASES, Case
from seed import later_run, seed_stories
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from threadline_testing.trackers.common import Faults

from threadline.db.models import AuditEvent, DeadLetter, Story, TrackerLink
from threadline.delivery.trackers import ExportFailed, export_stories
from threadline.exporters.trackers import add_tracker
from threadline.read.stories import story_view

KINDS = sorted(CASES)


@pytest.fixture(params=KINDS)
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def serve(case: Case, request: pytest.FixtureRequest):
    """`serve(**config)`: the case's stand-in behind its spec validator."""
    return request.getfixturevalue(case.fixture)


@pytest.fixture
def tracker_env(case: Case, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in case.env().items():
        monkeypatch.setenv(name, value)
    yield


def _add(engine: Any, case: Case, url: str, name: str = "t") -> None:
    with Session(engine) as session, session.begin():
        add_tracker(session, case.kind, name, case.values(url))


def test_first_export_creates_one_item_and_reexport_updates_counts(db_engine, case, serve, tracker_env) -> None:
    server = serve()
    _add(db_engine, case, server.url)
    story_ids = seed_stories(db_engine, 3)

    first = export_stories(db_engine, "t", story_ids, actor="cli")
    assert first.count("created") == 3 and first.count("failed") == 0
    assert len(case.items(server.world)) == 3
    key = first.outcomes[0].key
    assert key and "threadline" in case.body(server.world, key)
    assert re.search(r"Conversations:\S* \S*4", case.body(server.world, key))

    later_run(db_engine, story_ids, grown_by=3, created_at=time_now())
    again = export_stories(db_engine, "t", story_ids, actor="cli")
    assert again.count("created") == 0 and again.count("updated") == 3
    assert len(case.items(server.world)) == 3  # no new item
    assert re.search(r"Conversations:\S* \S*7", case.body(server.world, key))
    comments = case.comments(server.world, key)  # the theme grew: one comment with the new evidence
    assert len(comments) == 1 and "grew from 4 to 7" in comments[0] and "Still broken today" in comments[0]
    assert export_stories(db_engine, "t", story_ids, actor="cli").count("updated") == 3
    assert len(case.comments(server.world, key)) == 1  # not grown since: no second comment

    with Session(db_engine) as session:
        links = session.execute(select(TrackerLink)).scalars().all()
        assert len(links) == 3 and all(link.item_key and link.pushed_conversations == 7 for link in links)
        story = session.get(Story, story_ids[0])
        assert story is not None and story.status == "exported"
        view = story_view(session, story_ids[0])
        assert view is not None and view["trackers"][0]["key"] == key and view["trackers"][0]["url"]
        exports = session.execute(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "story.export")
        ).scalar()
        assert exports == 9  # three exports of three stories


def test_a_persons_edit_of_the_block_is_left_alone(db_engine, case, serve, tracker_env) -> None:
    server = serve()
    _add(db_engine, case, server.url)
    story_ids = seed_stories(db_engine, 1)
    key = export_stories(db_engine, "t", story_ids, actor="cli").outcomes[0].key
    case.edit_block_as_person(server.world, key)
    edited = case.body(server.world, key)

    later_run(db_engine, story_ids, grown_by=2, created_at=time_now())
    report = export_stories(db_engine, "t", story_ids, actor="cli")
    assert report.count("edited") == 1
    assert case.body(server.world, key) == edited  # nothing written over the person's text
    with Session(db_engine) as session:
        assert session.execute(select(TrackerLink.edited_by_person)).scalar_one() is True


def test_refused_token_fails_in_one_line_naming_the_tracker_and_writes_nothing(
    db_engine, case, serve, monkeypatch
) -> None:
    server = serve()
    for name, value in case.env(good=False).items():
        monkeypatch.setenv(name, value)
    _add(db_engine, case, server.url, name="team-tracker")
    story_ids = seed_stories(db_engine, 2)
    with pytest.raises(ExportFailed) as failed:
        export_stories(db_engine, "team-tracker", story_ids, actor="cli")
    message = str(failed.value)
    assert "\n" not in message and "team-tracker" in message and "refused" in message
    assert "refused-" not in message  # never the token itself
    assert case.items(server.world) == []
    with Session(db_engine) as session:
        assert session.execute(select(func.count()).select_from(TrackerLink)).scalar() == 0
        assert session.execute(select(Story.status).where(Story.id == story_ids[0])).scalar() == "accepted"


def test_missing_project_fails_in_one_line(db_engine, case, serve, tracker_env) -> None:
    server = serve()
    values = case.values(server.url)
    values.update({"github": {"repo": "acme/nope"}, "jira": {"project": "NOPE"}, "linear": {"team": "NOPE"}}[case.kind])
    with Session(db_engine) as session, session.begin():
        add_tracker(session, case.kind, "t", values)
    story_ids = seed_stories(db_engine, 1)
    with pytest.raises(ExportFailed, match=r"^tracker t \(.*\): .*not found"):
        export_stories(db_engine, "t", story_ids, actor="cli")
    assert case.items(server.world) == []


def test_a_429_with_retry_after_is_honoured(db_engine, case, serve, tracker_env) -> None:
    faults = Faults(error_429_share=0.5, retry_after_seconds=1, seed=3)
    server = serve(faults=faults)
    _add(db_engine, case, server.url)
    story_ids = seed_stories(db_engine, 2)
    started = time.monotonic()
    report = export_stories(db_engine, "t", story_ids, actor="cli")
    assert report.count("created") == 2, report.as_dict()
    assert server.stats.injected_429 >= 1
    assert len(case.items(server.world)) == 2
    if case.kind != "linear":  # Linear sends no Retry-After; its bucket reset is honoured instead
        assert time.monotonic() - started >= 1.0 * min(server.stats.injected_429, 1)


def test_a_failed_create_is_a_dead_letter_and_the_next_export_finds_the_item(
    db_engine, case, serve, tracker_env
) -> None:
    """The tracker creates the item but the answer is a 500: dead letter; the next export finds it, creates none."""
    failing = [True]

    def fail_once(_key: object) -> None:
        if failing and failing.pop():
            raise RuntimeError("the tracker fails after creating")

    server = serve(after_create=fail_once)
    _add(db_engine, case, server.url)
    story_ids = seed_stories(db_engine, 1)
    report = export_stories(db_engine, "t", story_ids, actor="cli")
    assert report.count("failed") == 1 and "tracker t:" in (report.outcomes[0].error or "")
    letters = _dead_letters(db_engine)
    assert [(d.stage, d.item, d.retried_at) for d in letters] == [("export.t", str(story_ids[0]), None)]
    assert len(case.items(server.world)) == 1

    again = export_stories(db_engine, "t", story_ids, actor="cli")
    assert again.count("found") == 1, again.as_dict()
    assert len(case.items(server.world)) == 1
    assert all(d.retried_at is not None for d in _dead_letters(db_engine))  # resolved by the success


def time_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _dead_letters(engine: Any) -> list[DeadLetter]:
    with Session(engine) as session:
        return list(session.execute(select(DeadLetter)).scalars())

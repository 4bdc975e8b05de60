"""`trackers pull`: a closed item sets its story to done; new conversations after the close flag a regression and comment once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cases import CASES, Case
from seed import later_run, seed_stories
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.db.models import AuditEvent, Story, TrackerLink
from threadline.delivery.trackers import export_stories, pull_tracker
from threadline.exporters.trackers import add_tracker
from threadline.read.stories import story_view


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def test_pull_maps_closed_to_done_and_flags_recurring_after_close(db_engine, case, request, monkeypatch) -> None:
    for name, value in case.env().items():
        monkeypatch.setenv(name, value)
    server = request.getfixturevalue(case.fixture)()
    with Session(db_engine) as session, session.begin():
        add_tracker(session, case.kind, "t", case.values(server.url))
    story_ids = seed_stories(db_engine, 2)
    report = export_stories(db_engine, "t", story_ids, actor="cli")
    key = report.outcomes[0].key

    assert pull_tracker(db_engine, "t", actor="cli").closed == 0
    case.close_as_person(server.world, key)
    pulled = pull_tracker(db_engine, "t", actor="cli")
    assert (pulled.checked, pulled.closed, pulled.regressions) == (2, 1, 0)
    with Session(db_engine) as session:
        assert session.get(Story, story_ids[0]).status == "done"
        assert session.get(Story, story_ids[1]).status == "exported"

    later_run(db_engine, story_ids, grown_by=3, created_at=datetime.now(UTC))  # 3 >= the default threshold
    flagged = pull_tracker(db_engine, "t", actor="cli")
    assert flagged.regressions == 1
    comments = case.comments(server.world, key)
    assert len(comments) == 1 and "recurring after close" in comments[0]
    assert pull_tracker(db_engine, "t", actor="cli").regressions == 0  # flagged once
    assert len(case.comments(server.world, key)) == 1  # commented once
    with Session(db_engine) as session:
        link = session.execute(select(TrackerLink).where(TrackerLink.story_id == story_ids[0])).scalar_one()
        assert link.regression_conversations == 3 and link.closed_at is not None
        view = story_view(session, story_ids[0])
        assert view["trackers"][0]["recurring_after_close"]["conversations"] == 3
        assert session.execute(select(AuditEvent.id).where(AuditEvent.action == "story.regression")).scalars().all()

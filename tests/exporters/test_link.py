"""`export --link ITEM`: a story linked to an existing tracker item instead of a new one (GitHub, Jira, Linear stand-ins).

The item must exist; the link is the same row as a created item's, so a later export updates
the block Threadline added to it; a story that already has an item in the tracker is refused,
and so is an item already linked to another story of the tracker (UNIQUE (tracker_id, item_key)).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cases import CASES, LINEAR_KEY
from seed import later_run, seed_stories
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from threadline.db.models import Story, TrackerLink
from threadline.delivery.trackers import AlreadyLinked, LinkRefused, export_stories, link_story, pull_tracker
from threadline.exporters.trackers import add_tracker

PERSON_TEXT = "Reported by the sales team: exports are broken for Acme."


def _setup(db_engine: Any, kind: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[kind]
    for name, value in case.env().items():
        monkeypatch.setenv(name, value)
    with Session(db_engine) as session, session.begin():
        add_tracker(session, kind, "t", case.values(url))


LINEAR_CREATE = "mutation($input: IssueCreateInput!) { issueCreate(input: $input) { success issue { identifier } } }"


def _person_item(kind: str, server: Any) -> str:
    world = server.world
    if kind == "github":
        return str(world.create_issue("Exports broken", PERSON_TEXT, "a-person").number)
    if kind == "linear":  # as a person does in Linear's UI, which creates through the same API
        team_id = next(iter(world.teams))
        variables = {"input": {"teamId": team_id, "title": "Exports broken", "description": PERSON_TEXT}}
        answer = httpx.post(
            f"{server.url}/graphql",
            json={"query": LINEAR_CREATE, "variables": variables},
            headers={"Authorization": LINEAR_KEY},
        )
        return str(answer.json()["data"]["issueCreate"]["issue"]["identifier"])
    document = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": PERSON_TEXT}]}],
    }
    return world.create(world.projects["OPS"], "Exports broken", document, "Task", []).key


@pytest.mark.parametrize("kind", ["github", "jira", "linear"])
def test_link_adopts_an_existing_item_and_later_exports_update_it(db_engine, kind, request, monkeypatch) -> None:
    server = request.getfixturevalue(CASES[kind].fixture)()
    _setup(db_engine, kind, server.url, monkeypatch)
    case = CASES[kind]
    story_id = seed_stories(db_engine, 1)[0]
    key = _person_item(kind, server)

    report = link_story(db_engine, "t", story_id, key, actor="cli")
    assert [(o.action, o.key) for o in report.outcomes] == [("linked", key)]
    assert len(case.items(server.world)) == 1  # nothing created
    body = case.body(server.world, key)
    assert PERSON_TEXT in body and "Conversations" in body  # the person's text kept, Threadline's block added
    with Session(db_engine) as session:
        link = session.execute(select(TrackerLink)).scalar_one()
        assert (link.story_id, link.item_key, link.pushed_conversations) == (story_id, key, 4)
        story = session.get(Story, story_id)
        assert story is not None and story.status == "exported"

    later_run(db_engine, [story_id], grown_by=3, created_at=datetime.fromtimestamp(time.time(), UTC))
    again = export_stories(db_engine, "t", [story_id], actor="cli")
    assert [(o.action, o.key) for o in again.outcomes] == [("updated", key)]
    assert len(case.items(server.world)) == 1
    body = case.body(server.world, key)
    assert PERSON_TEXT in body and "7" in body.split("Conversations", 1)[1][:40]


@pytest.mark.parametrize("kind", ["github", "jira", "linear"])
def test_a_missing_item_is_one_line_naming_the_tracker_and_writes_nothing(
    db_engine, kind, request, monkeypatch
) -> None:
    server = request.getfixturevalue(CASES[kind].fixture)()
    _setup(db_engine, kind, server.url, monkeypatch)
    story_id = seed_stories(db_engine, 1)[0]
    missing = {"github": "4242", "jira": "OPS-4242", "linear": "ENG-4242"}[kind]
    with pytest.raises(LinkRefused) as refused:
        link_story(db_engine, "t", story_id, missing, actor="cli")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("tracker t:") and missing in message
    with Session(db_engine) as session:
        assert session.execute(select(TrackerLink)).first() is None  # the reservation is undone
    assert export_stories(db_engine, "t", [story_id], actor="cli").count("created") == 1  # a plain export still works


def test_a_story_with_an_item_is_not_linked_again(db_engine, github_server, monkeypatch) -> None:
    server = github_server()
    _setup(db_engine, "github", server.url, monkeypatch)
    story_id = seed_stories(db_engine, 1)[0]
    created = export_stories(db_engine, "t", [story_id], actor="cli").outcomes[0].key
    other = _person_item("github", server)
    with pytest.raises(AlreadyLinked) as refused:
        link_story(db_engine, "t", story_id, other, actor="cli")
    assert "\n" not in str(refused.value) and f"already has item {created} in tracker t" in str(refused.value)
    assert PERSON_TEXT == server.world.issues[int(other)].body  # the other item untouched
    with Session(db_engine) as session:
        assert session.execute(select(TrackerLink.item_key)).scalars().all() == [created]


@pytest.mark.parametrize("kind", ["github", "jira", "linear"])
def test_an_item_linked_to_another_story_is_refused_and_left_untouched(db_engine, kind, request, monkeypatch) -> None:
    server = request.getfixturevalue(CASES[kind].fixture)()
    _setup(db_engine, kind, server.url, monkeypatch)
    case = CASES[kind]
    first, second = seed_stories(db_engine, 2)
    key = _person_item(kind, server)
    link_story(db_engine, "t", first, key, actor="cli")
    body = case.body(server.world, key)
    spelled = f"#{key}" if kind == "github" else key.lower()  # as a person may type it
    with pytest.raises(AlreadyLinked) as refused:
        link_story(db_engine, "t", second, spelled, actor="cli")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("tracker t:") and f"linked to story {first};" in message
    assert case.body(server.world, key) == body  # the second story's block was never written
    with Session(db_engine) as session:
        links = session.execute(select(TrackerLink.story_id, TrackerLink.item_key)).all()
        assert sorted(links) == [(first, key)]  # the second story's reservation is undone
    assert export_stories(db_engine, "t", [second], actor="cli").count("created") == 1  # it can still get its own


def test_the_database_holds_one_story_per_item_of_a_tracker(db_engine, github_server, monkeypatch) -> None:
    """The constraint, not only the check before linking: a second row with the same item is refused."""
    server = github_server()
    _setup(db_engine, "github", server.url, monkeypatch)
    first, second = seed_stories(db_engine, 2)
    key = export_stories(db_engine, "t", [first], actor="cli").outcomes[0].key
    with Session(db_engine) as session:
        tracker_id = session.execute(select(TrackerLink.tracker_id)).scalar_one()
    with pytest.raises(IntegrityError), Session(db_engine) as session, session.begin():
        session.add(TrackerLink(story_id=second, tracker_id=tracker_id, item_key=key))
    with Session(db_engine) as session, session.begin():  # reservations (no key yet) never clash
        session.add(TrackerLink(story_id=second, tracker_id=tracker_id, item_key=None))


def test_a_merged_away_storys_item_points_once_to_the_surviving_item(db_engine, github_server, monkeypatch) -> None:
    server = github_server()
    _setup(db_engine, "github", server.url, monkeypatch)
    away, surviving = seed_stories(db_engine, 2)
    keys = {o.story_id: o.key for o in export_stories(db_engine, "t", [away, surviving], actor="cli").outcomes}
    with Session(db_engine) as session, session.begin():
        away_story, surviving_story = session.get(Story, away), session.get(Story, surviving)
        assert away_story is not None and surviving_story is not None
        away_story.theme.merged_into_id = surviving_story.theme_id  # as `themes merge` records it

    def comments(key: str | None) -> list[str]:
        return [server.world.comments[c].body for c in server.world.issues[int(str(key))].comment_ids]

    pulled = pull_tracker(db_engine, "t", actor="cli")
    assert pulled.merge_comments == 1
    assert len(comments(keys[away])) == 1 and f"tracked in item {keys[surviving]}" in comments(keys[away])[0]
    again = export_stories(db_engine, "t", [away, surviving], actor="cli")
    assert again.merge_comments == 0 and again.count("created") == 0  # once; the surviving story keeps its item
    assert len(comments(keys[away])) == 1 and comments(keys[surviving]) == []
    assert len(server.world.issues) == 2

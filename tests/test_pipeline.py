"""A run end to end on the sample: themes, stories, verbatim evidence, reuse, membership history."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from support import EXAMPLES

from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import (
    Embedding,
    Message,
    Run,
    RunConversation,
    RunStory,
    RunStoryEvidence,
    RunTheme,
    ThemeMember,
)
from threadline.engine.runs import create_run, execute_run
from threadline.stories.evidence import is_small_talk


@pytest.fixture()
def imported(db_engine):
    result = import_file(db_engine, EXAMPLES, source_name="demo")
    assert result.ok, result.report.problems[:3]
    return result


def start_and_execute(engine, embedder, **filters) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session, **filters).id
    return execute_run(engine, run_id, embedder)


def test_run_produces_themes_and_stories_with_verbatim_evidence(db_engine, db_session, imported, embedder):
    run = start_and_execute(db_engine, embedder)
    assert run.status == "succeeded"
    total = imported.stats.inserted
    assert run.counters["conversations"] == total
    assert run.counters["embed"]["computed"] + run.counters["embed"]["skipped"] == total
    themes = db_session.execute(select(RunTheme).where(RunTheme.run_id == run.id, RunTheme.level == 1)).scalars().all()
    assert len(themes) >= 8  # the sample has at least 8 recurring problems
    assert all(t.parent_id is not None and t.name for t in themes)
    stories = (
        db_session.execute(select(RunStory).where(RunStory.run_id == run.id).order_by(RunStory.rank)).scalars().all()
    )
    assert stories and [s.rank for s in stories] == list(range(1, len(stories) + 1))
    for story in stories:
        assert story.conversation_count >= 5 and story.customer_count >= 1
        assert story.first_seen <= story.last_seen
        assert sum(story.trend["counts"]) == story.conversation_count
        evidence = (
            db_session.execute(select(RunStoryEvidence).where(RunStoryEvidence.run_story_id == story.id))
            .scalars()
            .all()
        )
        # Thin or repetitive evidence still gives a story, which says so (in its text and its factors).
        if len(evidence) < get_settings().pipeline.min_evidence_quotes:
            assert story.priority["evidence_notes"] and "Evidence: " in story.problem
        assert story.priority["factors"] and story.severity_reason  # rank and severity are explained
        assert len({e.conversation_id for e in evidence}) == len(evidence)
        for item in evidence:
            message = db_session.get(Message, item.message_id)
            assert message.author_role == "customer" and message.conversation_id == item.conversation_id
            assert message.position == item.message_position and item.author_role == "customer"
            assert message.text[item.start_offset : item.end_offset] == item.quote
            # Whole words and tokens (task.updated, e-mails, URLs, decimals), never small talk.
            assert item.start_offset == 0 or not message.text[item.start_offset - 1].isalnum(), item.quote
            assert item.end_offset == len(message.text) or not message.text[item.end_offset].isalnum(), item.quote
            assert not is_small_talk(item.quote), item.quote
            member = db_session.execute(
                select(ThemeMember.theme_id).where(
                    ThemeMember.run_id == run.id, ThemeMember.conversation_id == item.conversation_id
                )
            ).scalar_one()
            assert member == story.theme_id
    # No theme silently loses its story: every theme big enough for one has one.
    big_enough = db_session.execute(
        select(func.count()).select_from(
            select(ThemeMember.theme_id)
            .where(ThemeMember.run_id == run.id)
            .group_by(ThemeMember.theme_id)
            .having(func.count() >= get_settings().pipeline.min_story_conversations)
            .subquery()
        )
    ).scalar_one()
    assert len(stories) == big_enough
    # Ranked by the score of the explained factors, highest first.
    assert [s.score for s in stories] == sorted((s.score for s in stories), reverse=True)


def test_themes_are_mostly_pure_against_the_sample_labels(db_engine, db_session, imported, embedder):
    """Labels are read only here, after the run, to check that grouping is meaningful."""
    run = start_and_execute(db_engine, embedder)
    labels = {}
    with EXAMPLES.open() as handle:
        for line in handle:
            record = json.loads(line)
            labels[record["id"]] = record["labels"]["problem"]
    rows = db_session.execute(
        select(ThemeMember.theme_id, RunConversation.conversation_id)
        .join(
            RunConversation,
            (RunConversation.conversation_id == ThemeMember.conversation_id) & (RunConversation.run_id == run.id),
        )
        .where(ThemeMember.run_id == run.id)
    ).all()
    from threadline.db.models import Conversation

    external = dict(db_session.execute(select(Conversation.id, Conversation.external_id)).all())
    by_theme: dict[int, list[str]] = {}
    for theme_id, conversation_id in rows:
        by_theme.setdefault(theme_id, []).append(labels[external[conversation_id]])
    big = [members for members in by_theme.values() if len(members) >= 8]
    purity = sum(max(m.count(x) for x in set(m)) for m in big) / sum(len(m) for m in big)
    assert purity >= 0.8, purity


def test_second_run_reuses_embeddings_and_keeps_membership_history(db_engine, db_session, imported, embedder):
    first = start_and_execute(db_engine, embedder)
    embeddings = db_session.execute(select(func.count()).select_from(Embedding)).scalar_one()
    themes_before = {
        t.theme_id: t.name
        for t in db_session.execute(select(RunTheme).where(RunTheme.run_id == first.id, RunTheme.level == 1)).scalars()
    }
    second = start_and_execute(db_engine, embedder)
    assert second.counters["embed"]["computed"] == 0
    assert second.counters["embed"]["reused"] == first.counters["embed"]["computed"]
    assert first.counters["embed"]["typed"] == first.counters["embed"]["computed"]  # types come with the vectors
    assert second.counters["embed"]["typed"] == 0  # and are reused with them
    assert db_session.execute(select(func.count()).select_from(Embedding)).scalar_one() == embeddings
    for run in (first, second):
        members = db_session.execute(select(func.count()).where(RunConversation.run_id == run.id)).scalar_one()
        assert members == imported.stats.inserted
        assigned = db_session.execute(select(func.count()).where(ThemeMember.run_id == run.id)).scalar_one()
        assert assigned > 0
    # Unchanged data keeps every theme: ids and names are the same.
    second_themes = {
        t.theme_id: t.name
        for t in db_session.execute(select(RunTheme).where(RunTheme.run_id == second.id, RunTheme.level == 1)).scalars()
    }
    assert second_themes == themes_before
    assert second.counters["themes"]["new_themes"] == 0
    assert second.counters["themes"]["carried"] == second.counters["themes"]["conversations"]


def test_run_filters_by_date_and_source(db_engine, imported, embedder):
    from datetime import UTC, datetime

    with session_scope(db_engine) as session:
        everything = create_run(session, source="demo").counters["conversations"]
        recent = create_run(session, source="demo", since=datetime(2026, 10, 15, tzinfo=UTC)).counters["conversations"]
    assert 0 < recent < everything
    from threadline.engine.runs import RunError, RunRequestError

    with pytest.raises(RunError, match="no source named"):
        with session_scope(db_engine) as session:
            create_run(session, source="nope")
    with pytest.raises(RunRequestError, match="must be before"):
        with session_scope(db_engine) as session:
            create_run(session, since=datetime(2026, 11, 1, tzinfo=UTC), until=datetime(2026, 9, 1, tzinfo=UTC))


def test_taking_an_embedder_for_the_process_freezes_the_long_lived_heap() -> None:
    """Full garbage collections skip the model and libraries once a process has its embedder."""
    import gc

    from threadline import heap
    from threadline.ai.embeddings import process_embedder, set_process_embedder

    class StandIn:
        model_name, dimensions = "stand-in", 384

        def embed(self, texts: list[str]):
            raise AssertionError("not called")

    previous = process_embedder.__globals__["_process_embedder"]
    try:
        set_process_embedder(StandIn())
        assert heap._frozen and gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        heap.freeze_long_lived_objects()  # once per process: later objects stay collectable
        assert gc.get_freeze_count() == frozen
    finally:
        set_process_embedder(previous)


def test_a_run_too_small_for_any_theme_succeeds_with_an_empty_snapshot(db_engine, embedder, tmp_path):
    path = tmp_path / "few.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"f{i}", "messages": [{"author": "customer", "text": f"A question number {i}."}]}) + "\n"
            for i in range(4)
        )
    )
    import_file(db_engine, path, source_name="few")
    run = start_and_execute(db_engine, embedder, source="few")
    assert run.status == "succeeded", run.error
    assert run.counters["themes"]["themes"] == 0 and run.counters["stories"]["stories"] == 0

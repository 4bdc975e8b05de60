"""Stories to export, written straight into the database: one source, one scope, succeeded runs with snapshots.

The pipeline is tested elsewhere; exporting needs story identities with snapshots and evidence,
which these helpers write in a few milliseconds per story (50 for the concurrency test).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from threadline.db.models import (
    Conversation,
    Message,
    Run,
    RunStory,
    RunStoryEvidence,
    RunTheme,
    Scope,
    Source,
    Story,
    Theme,
    ThemeMember,
)

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _conversation(session: Session, source_id: int, external_id: str, when: datetime, text: str) -> Conversation:
    conversation = Conversation(
        source_id=source_id,
        external_id=external_id,
        created_at=when,
        url=f"https://support.example.com/conversations/{external_id}",
        content_hash="0" * 64,
    )
    conversation.messages = [Message(position=0, author_role="customer", raw_text=text, text=text, created_at=when)]
    session.add(conversation)
    return conversation


def seed_stories(engine: Engine, count: int, *, conversations: int = 4, status: str = "accepted") -> list[int]:
    """`count` story identities with one succeeded run's snapshot each; returns their ids."""
    with Session(engine) as session, session.begin():
        source = Source(kind="file", name="support", config={})
        session.add(source)
        session.flush()
        scope = Scope(key=str(source.id), source_ids=[source.id])
        session.add(scope)
        session.flush()
        run = Run(status="succeeded", scope_id=scope.id, snapshot=True, finished_at=START)
        session.add(run)
        session.flush()
        ids = []
        for i in range(count):
            theme = Theme(scope_id=scope.id, level=1, first_run_id=run.id, last_run_id=run.id)
            session.add(theme)
            session.flush()
            session.add(RunTheme(run_id=run.id, theme_id=theme.id, level=1, name=f"Problem {i}", size=conversations))
            story = Story(theme_id=theme.id, status=status)
            session.add(story)
            session.flush()
            snapshot = _snapshot(session, run.id, story, i, conversations)
            quote = f"Export {i} fails with an error when I press the button"
            first = _conversation(session, source.id, f"t{i}-0", START - timedelta(days=3), quote + ".")
            session.flush()
            session.add(_evidence(snapshot.id, first, quote))
            session.add(ThemeMember(run_id=run.id, conversation_id=first.id, theme_id=theme.id, similarity=0.9))
            ids.append(story.id)
        return ids


def _snapshot(session: Session, run_id: int, story: Story, i: int, conversations: int) -> RunStory:
    snapshot = RunStory(
        run_id=run_id,
        story_id=story.id,
        theme_id=story.theme_id,
        title=f"Exports fail for problem {i}",
        problem=f"Customers cannot export (problem {i}); the export button answers with an error.",
        conversation_count=conversations,
        customer_count=conversations,
        first_seen=START - timedelta(days=10),
        last_seen=START - timedelta(days=1),
        trend={"direction": "rising", "recent": conversations, "previous": 1},
        rank=i + 1,
        score=1.0 / (i + 1),
    )
    session.add(snapshot)
    session.flush()
    return snapshot


def _evidence(snapshot_id: int, conversation: Conversation, quote: str, position: int = 0) -> RunStoryEvidence:
    return RunStoryEvidence(
        run_story_id=snapshot_id,
        position=position,
        conversation_id=conversation.id,
        conversation_external_id=conversation.external_id,
        message_position=0,
        author_role="customer",
        quote=quote,
        start_offset=0,
        end_offset=len(quote),
    )


def later_run(engine: Engine, story_ids: list[int], *, grown_by: int, created_at: datetime) -> int:
    """A second succeeded run in which each story's theme grew by `grown_by` conversations created at `created_at`."""
    with Session(engine) as session, session.begin():
        first = session.execute(select(Run).order_by(Run.id)).scalars().first()
        assert first is not None
        source_id = session.execute(select(Source.id)).scalar_one()
        run = Run(status="succeeded", scope_id=first.scope_id, snapshot=True, finished_at=created_at)
        session.add(run)
        session.flush()
        for story_id in story_ids:
            story = session.get(Story, story_id)
            assert story is not None
            old = (
                session.execute(select(RunStory).where(RunStory.story_id == story_id).order_by(RunStory.run_id.desc()))
                .scalars()
                .first()
            )
            assert old is not None
            session.add(
                RunTheme(
                    run_id=run.id,
                    theme_id=story.theme_id,
                    level=1,
                    name="grown",
                    size=old.conversation_count + grown_by,
                )
            )
            snapshot = _snapshot(session, run.id, story, old.rank - 1, old.conversation_count + grown_by)
            for j in range(grown_by):
                quote = f"Still broken today, export {story_id} number {j} fails"
                conversation = _conversation(session, source_id, f"new{story_id}-{j}", created_at, quote + ".")
                session.flush()
                session.add(_evidence(snapshot.id, conversation, quote, position=j))
                session.add(
                    ThemeMember(run_id=run.id, conversation_id=conversation.id, theme_id=story.theme_id, similarity=0.9)
                )
        return run.id

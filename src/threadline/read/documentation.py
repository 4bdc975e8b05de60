"""Documentation as one run saw it: gaps, confusing articles, and the articles that answer a theme.

Read from the run's coverage snapshot (`run_doc_gaps`, `run_confusing_articles`,
`run_theme_passages`, written once by the `coverage` stage). Example conversations are shown
with a short excerpt of a customer message as it is now, masked like every view
(`threadline.read.display.shown`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import BigInteger, any_, cast, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from threadline.analysis.article_links import is_closing
from threadline.db.models import (
    CONFUSING_KINDS,
    Conversation,
    Message,
    RunConfusingArticle,
    RunDocGap,
    RunTheme,
    Theme,
)
from threadline.read.display import shown
from threadline.read.themes import theme_name
from threadline.text.sentences import truncate_words

STILL_STUCK, VOLUME_NOT_FALLING = CONFUSING_KINDS  # `run_confusing_articles.kind`
EXCERPT_CHARS = 160  # characters of a customer message shown as an example: one line of a list


def _customer_texts(session: Session, conversation_ids: list[int]) -> dict[int, list[str]]:
    """Customer messages of each conversation, in order (one query)."""
    texts: dict[int, list[str]] = defaultdict(list)
    if not conversation_ids:
        return texts
    rows = session.execute(
        select(Message.conversation_id, Message.text)
        .where(
            Message.conversation_id == any_(cast(conversation_ids, ARRAY(BigInteger))),
            Message.author_role == "customer",
        )
        .order_by(Message.conversation_id, Message.position)
    )
    for conversation_id, body in rows:
        texts[conversation_id].append(body)
    return texts


def _external_ids(session: Session, conversation_ids: list[int]) -> dict[int, str]:
    if not conversation_ids:
        return {}
    return dict(
        session.execute(
            select(Conversation.id, Conversation.external_id).where(
                Conversation.id == any_(cast(conversation_ids, ARRAY(BigInteger)))
            )
        ).all()
    )


def _excerpt(text: str | None) -> str | None:
    return shown(truncate_words(" ".join(text.split()), EXCERPT_CHARS)) if text else None


def _examples(ids: list[int], external: dict[int, str], texts: dict[int, list[str]], *, stuck: bool) -> list[dict]:
    """Example conversations: the question (gaps) or the last message that did not close (confusing articles)."""
    examples = []
    for conversation_id in ids:
        messages = texts.get(conversation_id, [])
        if stuck:
            text = next((m for m in reversed(messages) if not is_closing(m)), None)
        else:
            text = messages[0] if messages else None
        examples.append(
            {
                "conversation_id": conversation_id,
                "external_id": external.get(conversation_id),  # None: the conversation was deleted since
                "excerpt": _excerpt(text),
            }
        )
    return examples


def confusing_reason(row: RunConfusingArticle) -> str:
    """Why the article is confusing, in plain words (shown by the CLI, the API, the dashboard and the report)."""
    if row.kind == VOLUME_NOT_FALLING:
        when = row.article_updated_at.date().isoformat() if row.article_updated_at else "its date"
        return (
            f"volume did not fall after it was updated on {when}: {row.conversations_before} conversations "
            f"in the {row.window_days} days before, {row.conversations_after} after"
        )
    return (
        f"still stuck in {row.stuck_conversations} of {row.linked_conversations} conversations that link it "
        f"({row.customers} customers)"
    )


def _theme_names(session: Session, run_id: int, theme_ids: list[int]) -> dict[int, str]:
    """Display names of the given themes as the run named them (a person's name first)."""
    if not theme_ids:
        return {}
    rows = session.execute(
        select(Theme.id, RunTheme.name, Theme.human_name)
        .outerjoin(RunTheme, (RunTheme.run_id == run_id) & (RunTheme.theme_id == Theme.id))
        .where(Theme.id.in_(theme_ids))
    )
    return {theme_id: theme_name(human, computed) for theme_id, computed, human in rows}


def documentation(session: Session, run_id: int) -> dict[str, Any]:
    """The run's documentation gaps and confusing articles, ranked by impact, with example conversations."""
    gap_rows = session.execute(
        select(RunDocGap, RunTheme.name, Theme.human_name)
        .join(Theme, Theme.id == RunDocGap.theme_id)
        .outerjoin(RunTheme, (RunTheme.run_id == RunDocGap.run_id) & (RunTheme.theme_id == RunDocGap.theme_id))
        .where(RunDocGap.run_id == run_id)
        .order_by(RunDocGap.rank)
    ).all()
    confusing_rows = (
        session.execute(
            select(RunConfusingArticle).where(RunConfusingArticle.run_id == run_id).order_by(RunConfusingArticle.rank)
        )
        .scalars()
        .all()
    )
    ids = sorted(
        {c for row in gap_rows for c in row[0].example_conversation_ids}
        | {c for row in confusing_rows for c in row.example_conversation_ids}
    )
    external, texts = _external_ids(session, ids), _customer_texts(session, ids)
    gaps = [
        {
            "rank": gap.rank,
            "theme_id": gap.theme_id,
            "theme": theme_name(human, computed),
            "conversations": gap.conversations,
            "customers": gap.customers,
            "question_share": round(gap.question_share, 3),
            "best_similarity": round(gap.best_similarity, 3) if gap.best_similarity is not None else None,
            "examples": _examples(list(gap.example_conversation_ids), external, texts, stuck=False),
        }
        for gap, computed, human in gap_rows
    ]
    theme_names = _theme_names(session, run_id, [r.theme_id for r in confusing_rows if r.theme_id is not None])
    confusing = [
        {
            "rank": row.rank,
            "kind": row.kind,
            "reason": confusing_reason(row),
            "article_id": row.article_id,
            "title": row.article_title,
            "url": row.article_url,
            "content_hash": row.content_hash,
            "linked_conversations": row.linked_conversations,
            "stuck_conversations": row.stuck_conversations,
            "stuck_share": round(row.stuck_conversations / row.linked_conversations, 3)
            if row.linked_conversations and row.stuck_conversations is not None
            else None,
            "customers": row.customers,
            "theme_id": row.theme_id,
            "theme": theme_names.get(row.theme_id) if row.theme_id is not None else None,
            "article_updated_at": row.article_updated_at.isoformat() if row.article_updated_at else None,
            "window_days": row.window_days,
            "conversations_before": row.conversations_before,
            "conversations_after": row.conversations_after,
            "share_before": round(row.share_before, 3) if row.share_before is not None else None,
            "share_after": round(row.share_after, 3) if row.share_after is not None else None,
            "examples": _examples(list(row.example_conversation_ids), external, texts, stuck=row.kind == STILL_STUCK),
        }
        for row in confusing_rows
    ]
    return {"run_id": run_id, "gaps": gaps, "confusing_articles": confusing}

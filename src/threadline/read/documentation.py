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
    confusing = [
        {
            "rank": row.rank,
            "article_id": row.article_id,
            "title": row.article_title,
            "url": row.article_url,
            "content_hash": row.content_hash,
            "linked_conversations": row.linked_conversations,
            "stuck_conversations": row.stuck_conversations,
            "stuck_share": round(row.stuck_conversations / row.linked_conversations, 3)
            if row.linked_conversations
            else 0.0,
            "customers": row.customers,
            "examples": _examples(list(row.example_conversation_ids), external, texts, stuck=True),
        }
        for row in confusing_rows
    ]
    return {"run_id": run_id, "gaps": gaps, "confusing_articles": confusing}

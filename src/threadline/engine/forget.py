"""`threadline forget`: erase a customer's or a conversation's text everywhere, snapshots included.

The one exception to immutable snapshots (right to erasure). For the matched conversations:
message text (raw and normalised), subject, notes and the raw source payload are replaced
by `ERASED`; analyses (facet summaries) and embeddings derived from the text are deleted;
for a customer, the contact's e-mail, name, company and attributes too. In every snapshot,
quotes from those conversations become `ERASED` (their message hash is dropped), the same
quotes are replaced wherever a story's text repeats them, and a theme description's example
taken from them is replaced. Memberships and counts stay: they hold no text. Who asked and
when is recorded in the audit trail (never what was erased).

A source that still holds the conversation will bring its text back on a later import or
sync: erase it there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import (
    Analysis,
    Contact,
    Conversation,
    Embedding,
    Message,
    RunStory,
    RunStoryEvidence,
    RunTheme,
    Source,
)
from threadline.engine.curation import record

ERASED = "[erased on request]"  # what erased text reads as, everywhere

__all__ = ["ERASED", "ForgetError", "ForgetResult", "forget"]


class ForgetError(ValueError):
    """Nothing matches the request; the message says what was looked for (never customer text)."""


@dataclass
class ForgetResult:
    conversations: int = 0
    messages: int = 0
    contacts: int = 0
    quotes: int = 0
    story_snapshots: int = 0
    theme_snapshots: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _matching_conversations(
    session: Session, conversations: Sequence[tuple[str, str]], customer: str | None
) -> tuple[list[int], list[int]]:
    ids: set[int] = set()
    contacts: list[int] = []
    if conversations:
        ids |= set(
            session.execute(
                select(Conversation.id)
                .join(Source, Source.id == Conversation.source_id)
                .where(tuple_(Source.name, Conversation.external_id).in_([tuple(c) for c in conversations]))
            ).scalars()
        )
    if customer:
        contacts = list(
            session.execute(
                select(Contact.id).where(or_(Contact.email == customer, Contact.external_id == customer))
            ).scalars()
        )
        if contacts:
            ids |= set(session.execute(select(Conversation.id).where(Conversation.contact_id.in_(contacts))).scalars())
    return sorted(ids), contacts


def _description_examples(session: Session, ids: list[int]) -> list[str]:
    """The excerpt of each conversation a theme description may quote (as the themes stage cuts it)."""
    parts: dict[int, list[str]] = {}
    for conversation_id, body in session.execute(
        select(Message.conversation_id, Message.text)
        .where(Message.conversation_id.in_(ids), Message.author_role == "customer")
        .order_by(Message.conversation_id, Message.position)
    ):
        if body.strip():
            parts.setdefault(conversation_id, []).append(body)
    chars = get_settings().pipeline.description_quote_chars  # as the themes stage cuts its example
    return ["\n".join(texts)[:chars].replace("\n", " ") for texts in parts.values()]


def _scrub(value: str | None, needles: list[str]) -> str | None:
    if value is None:
        return None
    for needle in needles:
        if needle:
            value = value.replace(needle, ERASED)
    return value


def forget(
    session: Session, *, conversations: Sequence[tuple[str, str]] = (), customer: str | None = None, actor: str
) -> ForgetResult:
    """Erase the text of the conversations `(source name, external id)` and of every conversation of `customer`.

    `customer` matches a contact's e-mail or external id in any source. Raises `ForgetError`
    when nothing matches. The caller commits.
    """
    ids, contacts = _matching_conversations(session, conversations, customer)
    if not ids and not contacts:
        raise ForgetError("no conversation or customer matches the request")
    result = ForgetResult(conversations=len(ids), contacts=len(contacts))
    # Snapshots first, while the text to look for still exists.
    evidence = session.execute(
        select(RunStoryEvidence.id, RunStoryEvidence.run_story_id, RunStoryEvidence.quote).where(
            RunStoryEvidence.conversation_id.in_(ids)
        )
    ).all()
    quotes = sorted({q for _, _, q in evidence if q != ERASED}, key=len, reverse=True)
    if evidence:
        session.execute(
            update(RunStoryEvidence)
            .where(RunStoryEvidence.id.in_([e.id for e in evidence]))
            .values(quote=ERASED, message_sha256=None)
        )
        result.quotes = len(evidence)
        stories = session.execute(
            select(RunStory).where(RunStory.id.in_(sorted({e.run_story_id for e in evidence})))
        ).scalars()
        for story in stories:
            story.title = _scrub(story.title, quotes) or ERASED
            story.problem = _scrub(story.problem, quotes) or ERASED
            story.user_story = _scrub(story.user_story, quotes)
            story.severity_reason = _scrub(story.severity_reason, quotes)
            story.acceptance_criteria = [_scrub(c, quotes) or "" for c in story.acceptance_criteria or []]
            result.story_snapshots += 1
    examples = _description_examples(session, ids)
    themes = session.execute(select(RunTheme).where(RunTheme.representative_conversation_id.in_(ids))).scalars()
    for theme in themes:
        theme.description = _scrub(theme.description, sorted(examples, key=len, reverse=True))
        theme.representative_conversation_id = None
        result.theme_snapshots += 1
    # The stored conversations, their derived data, the customer.
    erased = session.execute(
        update(Message)
        .where(Message.conversation_id.in_(ids))
        .values(text=ERASED, raw_text=ERASED)
        .returning(Message.id)
    )
    result.messages = len(erased.all())
    session.execute(
        update(Conversation)
        .where(Conversation.id.in_(ids))
        .values(subject=None, raw={"erased": True}, notes=[], content_hash="erased")
    )
    session.execute(delete(Analysis).where(Analysis.conversation_id.in_(ids)))
    session.execute(delete(Embedding).where(Embedding.conversation_id.in_(ids)))
    if contacts:
        session.execute(
            update(Contact).where(Contact.id.in_(contacts)).values(email=None, name=None, company=None, attributes={})
        )
    record(
        session,
        actor,
        "forget",
        "conversation",
        None,
        conversation_ids=ids,
        contact_ids=contacts,
        **{k: v for k, v in result.as_dict().items() if k != "conversations"},
    )
    return result

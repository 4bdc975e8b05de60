"""The customer side of a conversation: what embeddings, types and themes are computed from."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import BigInteger, any_, cast, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import Message, RunConversation
from threadline.text.normalize import NORMALIZE_VERSION


def load_customer_texts(
    session: Session, conversation_ids: Sequence[int] | None = None, *, run_id: int | None = None
) -> dict[int, str]:
    """Customer messages of each conversation joined in order, cut to `pipeline.embed_input_max_chars`.

    Selects either explicit `conversation_ids` (a batch) or every member of `run_id`.
    Conversations without any customer message are absent from the result.
    """
    query = select(Message.conversation_id, Message.text).where(Message.author_role == "customer")
    if run_id is not None:
        query = query.join(RunConversation, RunConversation.conversation_id == Message.conversation_id).where(
            RunConversation.run_id == run_id
        )
    else:
        query = query.where(Message.conversation_id == any_(cast(list(conversation_ids or []), ARRAY(BigInteger))))
    parts: dict[int, list[str]] = defaultdict(list)
    rows = session.execute(query.order_by(Message.conversation_id, Message.position))
    for conversation_id, text in rows:
        if text.strip():
            parts[conversation_id].append(text)
    max_chars = get_settings().pipeline.embed_input_max_chars
    return {cid: "\n".join(texts)[:max_chars] for cid, texts in parts.items()}


def input_hash(*parts: str) -> str:
    """Content address of a stage input: SHA-256 over its parts and the normalizer version."""
    digest = hashlib.sha256(NORMALIZE_VERSION.encode())
    for part in parts:
        digest.update(b"\x00")
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()

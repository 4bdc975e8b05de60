"""Stage `embed`: one vector per conversation's customer text, reused while the text is unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from threadline.db.models import Embedding, RunConversation
from threadline.pipeline.customer_text import input_hash, load_customer_texts

STAGE = "embed"


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class EmbedResult:
    """Outcome of one batch; counters are summed from these, never kept in shared state."""

    computed: int = 0
    reused: int = 0
    skipped: dict[int, str] = field(default_factory=dict)  # conversation id -> reason

    @property
    def done(self) -> int:
        return self.computed + self.reused


def embed_conversations(session: Session, conversation_ids: Sequence[int], embedder: Embedder) -> EmbedResult:
    """Store embeddings for `conversation_ids` that lack one for their current customer text.

    Idempotent: rows are keyed by (conversation, model, input hash) and inserted with
    ON CONFLICT DO NOTHING, so running a batch twice leaves the rows of running it once.
    """
    result = EmbedResult()
    texts = load_customer_texts(session, conversation_ids)
    for conversation_id in conversation_ids:
        if conversation_id not in texts:
            result.skipped[conversation_id] = "no customer messages"
    hashes = {cid: input_hash(embedder.model_name, text) for cid, text in texts.items()}
    existing = set()
    if hashes:
        existing = set(
            session.execute(
                select(Embedding.conversation_id).where(
                    Embedding.model == embedder.model_name,
                    tuple_(Embedding.conversation_id, Embedding.input_hash).in_(list(hashes.items())),
                )
            ).scalars()
        )
    missing = [cid for cid in texts if cid not in existing]
    result.reused = len(texts) - len(missing)
    if missing:
        vectors = embedder.embed([texts[cid] for cid in missing])
        rows = [
            dict(conversation_id=cid, model=embedder.model_name, input_hash=hashes[cid],
                 dimensions=int(vector.shape[0]), vector=vector)
            for cid, vector in zip(missing, vectors, strict=True)
        ]  # fmt: skip
        session.execute(insert(Embedding).values(rows).on_conflict_do_nothing())
        result.computed = len(missing)
    return result


def load_run_vectors(session: Session, run_id: int, model: str) -> dict[int, np.ndarray]:
    """The newest embedding for `model` of each conversation in the run."""
    rows = session.execute(
        select(Embedding.conversation_id, Embedding.vector)
        .join(RunConversation, RunConversation.conversation_id == Embedding.conversation_id)
        .where(RunConversation.run_id == run_id, Embedding.model == model)
        .order_by(Embedding.conversation_id, Embedding.created_at.desc(), Embedding.id.desc())
        .ext(distinct_on(Embedding.conversation_id))
    )
    return {cid: np.asarray(vector, dtype=np.float32) for cid, vector in rows}

"""Stage `embed`: one vector per conversation's customer text, reused while the text is unchanged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from threadline.db.vectors import fetch_vectors, insert_embeddings
from threadline.pipeline.customer_text import input_hash, load_customer_texts

STAGE = "embed"

# Batch lookups probe the unique index by `conversation_id = ANY(ids)`. Without that
# condition the planner joins the (id, hash) pairs against every row of the model: a
# full scan per batch, quadratic in the table's size.
_STORED_KEYS_SQL = text(
    """
    SELECT e.conversation_id, e.input_hash FROM embeddings e
     WHERE e.conversation_id = ANY(CAST(:ids AS bigint[])) AND e.model = :model
    """
)
_STORED_VECTORS_SQL = """
    SELECT e.conversation_id, e.vector FROM embeddings e
      JOIN unnest(%(ids)s::bigint[], %(hashes)s::text[]) AS k(conversation_id, input_hash)
        ON e.conversation_id = k.conversation_id AND e.input_hash = k.input_hash
     WHERE e.conversation_id = ANY(%(ids)s::bigint[]) AND e.model = %(model)s
"""
# Picks the newest row per conversation on narrow rows first, then reads only those vectors.
_RUN_VECTORS_SQL = """
    SELECT e.conversation_id, e.vector FROM embeddings e
     WHERE e.id IN (
         SELECT DISTINCT ON (n.conversation_id) n.id
           FROM embeddings n JOIN run_conversations rc ON rc.conversation_id = n.conversation_id
          WHERE rc.run_id = %s AND n.model = %s
          ORDER BY n.conversation_id, n.created_at DESC, n.id DESC)
"""


class Embedder(Protocol):
    model_name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class EmbedResult:
    """Outcome of one batch; counters are summed from these, never kept in shared state.

    `texts` and `vectors` (the ones computed now) let a later step of the same batch
    work on them without reading them back.
    """

    computed: int = 0
    reused: int = 0
    skipped: dict[int, str] = field(default_factory=dict)  # conversation id -> reason
    texts: dict[int, str] = field(default_factory=dict)  # conversation id -> customer text
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # conversation id -> vector computed now

    @property
    def done(self) -> int:
        return self.computed + self.reused


def embed_conversations(
    session: Session,
    conversation_ids: Sequence[int],
    embedder: Embedder,
) -> EmbedResult:
    """Store embeddings for `conversation_ids` that lack one for their current customer text.

    Idempotent: rows are keyed by (conversation, model, input hash) and inserted with
    ON CONFLICT DO NOTHING, so running a batch twice leaves the rows of running it once.
    """
    texts = load_customer_texts(session, conversation_ids)
    result = EmbedResult(texts=texts)
    for conversation_id in conversation_ids:
        if conversation_id not in texts:
            result.skipped[conversation_id] = "no customer messages"
    hashes = {cid: input_hash(embedder.model_name, text) for cid, text in texts.items()}
    existing = stored_embedding_ids(session, embedder.model_name, hashes)
    missing = [cid for cid in texts if cid not in existing]
    result.reused = len(texts) - len(missing)
    if missing:
        vectors = embedder.embed([texts[cid] for cid in missing])
        result.vectors = dict(zip(missing, vectors, strict=True))
        insert_embeddings(session, embedder.model_name, [(cid, hashes[cid], result.vectors[cid]) for cid in missing])
        result.computed = len(missing)
    return result


def stored_embedding_ids(session: Session, model: str, hashes: Mapping[int, str]) -> set[int]:
    """Conversations of `hashes` (conversation id -> input hash) that already have a vector for `model`."""
    if not hashes:
        return set()
    rows = session.execute(_STORED_KEYS_SQL, {"ids": list(hashes), "model": model})
    return {cid for cid, digest in rows if hashes.get(cid) == digest}


def load_stored_vectors(session: Session, model: str, hashes: Mapping[int, str]) -> dict[int, np.ndarray]:
    """The stored vectors of `hashes` (conversation id -> input hash) for `model`; absent keys are missing."""
    if not hashes:
        return {}
    return fetch_vectors(
        session, _STORED_VECTORS_SQL, {"ids": list(hashes), "hashes": list(hashes.values()), "model": model}
    )


def load_run_vectors(session: Session, run_id: int, model: str) -> dict[int, np.ndarray]:
    """The newest embedding for `model` of each conversation in the run."""
    return fetch_vectors(session, _RUN_VECTORS_SQL, (run_id, model))

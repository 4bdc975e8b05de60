"""Embedding vectors in and out of PostgreSQL in pgvector's binary format.

SQLAlchemy's pgvector type sends and reads vectors as text ("[0.0123,...]"): formatting
and parsing 384 floats per row costs ~0.2 ms each way, seconds per 10,000 conversations.
These helpers talk to psycopg directly on the session's own connection (same
transaction), with pgvector's binary dumper and loader: a vector is 4 + 4 x dims bytes
copied by numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import text
from sqlalchemy.orm import Session

INSERT_EMBEDDINGS_SQL = """
INSERT INTO embeddings (conversation_id, model, input_hash, dimensions, vector)
VALUES (%s, %s, %s, %s, %b)
ON CONFLICT (conversation_id, model, input_hash) DO NOTHING
"""


def _psycopg_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's current transaction, with the vector type registered."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection)
    if connection.adapters.types.get("vector") is None:
        register_vector(connection)  # one catalog lookup per pooled connection, then cached on it
    return connection


def insert_embeddings(session: Session, model: str, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
    """Insert (conversation id, input hash, vector) rows for `model`; existing keys are left as they are.

    Idempotent by the (conversation, model, input hash) unique key: a batch executed twice
    stores each vector once.
    """
    if not rows:
        return
    with _psycopg_connection(session).cursor() as cursor:
        cursor.executemany(
            INSERT_EMBEDDINGS_SQL,
            [
                (cid, model, digest, int(vector.shape[0]), np.asarray(vector, dtype=np.float32))
                for cid, digest, vector in rows
            ],
        )


def fetch_vectors(
    session: Session, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> dict[int, np.ndarray]:
    """Run `sql` (selecting conversation id, vector) and return {conversation id: float32 vector}.

    Later rows for the same conversation replace earlier ones, so order the query so the
    wanted row comes last (or select one row per conversation).
    """
    with _psycopg_connection(session).cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        return {int(cid): vector.to_numpy() for cid, vector in _rows(cursor)}


def _rows(cursor: psycopg.Cursor[Any]) -> Iterable[tuple[int, Any]]:
    while batch := cursor.fetchmany(1_000):
        yield from batch


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
    params = {"ids": list(hashes), "hashes": list(hashes.values()), "model": model}
    return fetch_vectors(session, _STORED_VECTORS_SQL, params)


def load_run_vectors(session: Session, run_id: int, model: str) -> dict[int, np.ndarray]:
    """The newest embedding for `model` of each conversation in the run."""
    return fetch_vectors(session, _RUN_VECTORS_SQL, (run_id, model))


_NEWEST_VECTORS_SQL = """
    SELECT e.conversation_id, e.vector FROM embeddings e
     WHERE e.id IN (
         SELECT DISTINCT ON (n.conversation_id) n.id FROM embeddings n
          WHERE n.conversation_id = ANY(%s::bigint[]) AND n.model = %s
          ORDER BY n.conversation_id, n.created_at DESC, n.id DESC)
"""


def load_newest_vectors(session: Session, conversation_ids: Sequence[int], model: str) -> dict[int, np.ndarray]:
    """The newest embedding for `model` of each of `conversation_ids` (those without one are absent)."""
    if not conversation_ids:
        return {}
    return fetch_vectors(session, _NEWEST_VECTORS_SQL, (list(conversation_ids), model))


# The mean of each leaf theme's member vectors, computed by pgvector's avg(vector): one row per
# theme travels, not one per conversation.
_THEME_CENTROIDS_SQL = """
    WITH newest AS (
        SELECT DISTINCT ON (n.conversation_id) n.conversation_id, n.id
          FROM embeddings n JOIN theme_members tm ON tm.conversation_id = n.conversation_id
         WHERE tm.run_id = %(run_id)s AND n.model = %(model)s
         ORDER BY n.conversation_id, n.created_at DESC, n.id DESC)
    SELECT tm.theme_id, avg(e.vector) FROM theme_members tm
      JOIN newest k ON k.conversation_id = tm.conversation_id
      JOIN embeddings e ON e.id = k.id
     WHERE tm.run_id = %(run_id)s
     GROUP BY tm.theme_id
"""


def load_theme_centroids(session: Session, run_id: int, model: str) -> dict[int, np.ndarray]:
    """{leaf theme id: mean of its members' newest `model` vectors} for the run's themes (not normalised)."""
    return fetch_vectors(session, _THEME_CENTROIDS_SQL, {"run_id": run_id, "model": model})

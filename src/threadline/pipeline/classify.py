"""Offline conversation type per conversation, cached in `analyses`.

Runs inside the `embed` stage's batch, on the vectors that batch has just computed
(see `stages._embed`): a separate pass would read every text and vector back. The
stand-alone `classify` stage remains for runs created with it in their phases.
Keyed by (conversation, stage, input hash, model, version) like every analysis, so an
unchanged conversation is never classified twice by the same rule.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from threadline.analysis.conversation_type import (
    CONVERSATION_TYPE_VERSION,
    PrototypeSet,
    build_prototypes,
    classify_conversation_types,
)
from threadline.db.models import Analysis, RunConversation
from threadline.pipeline.analysis_cache import cached_conversation_ids, store_analyses
from threadline.pipeline.customer_text import input_hash, load_customer_texts
from threadline.pipeline.embed import Embedder, load_stored_vectors

STAGE = "type"


@dataclass
class ClassifyResult:
    computed: int = 0
    reused: int = 0
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.computed + self.reused


_prototypes_lock = threading.Lock()


def _prototypes(embedder: Embedder) -> PrototypeSet:
    """The type prototypes embedded by `embedder`, once per process (worker threads wait for the first)."""
    with _prototypes_lock:
        return _embedded_prototypes(embedder)


@lru_cache(maxsize=2)
def _embedded_prototypes(embedder: Embedder) -> PrototypeSet:
    from threadline.ai.embeddings import WEIGHTS_SHA256
    from threadline.analysis.prototype_vectors import shipped_prototypes

    return shipped_prototypes(embedder.model_name, WEIGHTS_SHA256) or build_prototypes(embedder.embed)


def model_key(embedder: Embedder) -> str:
    return f"rules+{embedder.model_name}"


def classify_conversations(
    session: Session,
    conversation_ids: Sequence[int],
    embedder: Embedder,
    *,
    texts: Mapping[int, str] | None = None,
    vectors: Mapping[int, np.ndarray] | None = None,
) -> ClassifyResult:
    """Store the type of each conversation whose current customer text has no cached result.

    `texts` (customer texts of these conversations) and `vectors` (embeddings of some of
    them) skip reading what the caller already holds: the embed stage passes the vectors
    it has just computed. Vectors not given are read from `embeddings`, and computed only
    when none is stored.
    """
    result = ClassifyResult()
    if texts is None:
        texts = load_customer_texts(session, conversation_ids)
    for conversation_id in conversation_ids:
        if conversation_id not in texts:
            result.skipped[conversation_id] = "no customer messages"
    model = model_key(embedder)
    hashes = {cid: input_hash(STAGE, texts[cid]) for cid in conversation_ids if cid in texts}
    cached = cached_conversation_ids(session, stage=STAGE, model=model, version=CONVERSATION_TYPE_VERSION, keys=hashes)
    missing = [cid for cid in hashes if cid not in cached]
    result.reused = len(hashes) - len(missing)
    if missing:
        matrix = _vectors(session, {cid: texts[cid] for cid in missing}, embedder, known=vectors or {})
        types = classify_conversation_types([texts[cid] for cid in missing], matrix, _prototypes(embedder))
        rows = [
            dict(
                conversation_id=cid,
                stage=STAGE,
                input_hash=hashes[cid],
                model=model,
                version=CONVERSATION_TYPE_VERSION,
                output={"type": t.type, "confidence": t.confidence, "cues": t.cues},
            )
            for cid, t in zip(missing, types, strict=True)
        ]
        store_analyses(session, rows)
        result.computed = len(missing)
    return result


def _vectors(
    session: Session, texts: dict[int, str], embedder: Embedder, known: Mapping[int, np.ndarray]
) -> np.ndarray:
    """One row per text: `known` vectors, else stored ones, else computed now (in `texts` order)."""
    found = {cid: known[cid] for cid in texts if cid in known}
    unknown = {cid: input_hash(embedder.model_name, text) for cid, text in texts.items() if cid not in found}
    found.update(load_stored_vectors(session, embedder.model_name, unknown))
    absent = [cid for cid in texts if cid not in found]
    if absent:
        found.update(zip(absent, embedder.embed([texts[cid] for cid in absent]), strict=True))
    return np.stack([np.asarray(found[cid], dtype=np.float32) for cid in texts])


def load_types(session: Session, run_id: int) -> dict[int, str]:
    """Newest conversation type of each member of the run (any model/version)."""
    rows = session.execute(
        select(Analysis.conversation_id, Analysis.output["type"].astext)
        .join(RunConversation, RunConversation.conversation_id == Analysis.conversation_id)
        .where(RunConversation.run_id == run_id, Analysis.stage == STAGE)
        .order_by(Analysis.conversation_id, Analysis.created_at.desc(), Analysis.id.desc())
        .ext(distinct_on(Analysis.conversation_id))
    )
    return {cid: kind for cid, kind in rows}

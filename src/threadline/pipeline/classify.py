"""Stage `classify`: offline conversation type per conversation, cached in `analyses`.

Keyed by (conversation, stage, input hash, model, version) like every analysis, so an
unchanged conversation is never classified twice by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.orm import Session

from threadline.analysis.conversation_type import (
    CONVERSATION_TYPE_VERSION,
    PrototypeSet,
    build_prototypes,
    classify_conversation_types,
)
from threadline.db.models import Analysis, Embedding, RunConversation
from threadline.pipeline.analysis_cache import cached_conversation_ids
from threadline.pipeline.customer_text import input_hash, load_customer_texts
from threadline.pipeline.embed import Embedder

STAGE = "type"


@dataclass
class ClassifyResult:
    computed: int = 0
    reused: int = 0
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.computed + self.reused


@lru_cache(maxsize=2)
def _prototypes(embedder: Embedder) -> PrototypeSet:
    return build_prototypes(embedder.embed)


def model_key(embedder: Embedder) -> str:
    return f"rules+{embedder.model_name}"


def classify_conversations(session: Session, conversation_ids: Sequence[int], embedder: Embedder) -> ClassifyResult:
    """Store the type of each conversation whose current customer text has no cached result."""
    result = ClassifyResult()
    texts = load_customer_texts(session, conversation_ids)
    for conversation_id in conversation_ids:
        if conversation_id not in texts:
            result.skipped[conversation_id] = "no customer messages"
    model = model_key(embedder)
    hashes = {cid: input_hash(STAGE, text) for cid, text in texts.items()}
    cached = cached_conversation_ids(session, stage=STAGE, model=model, version=CONVERSATION_TYPE_VERSION, keys=hashes)
    missing = [cid for cid in texts if cid not in cached]
    result.reused = len(texts) - len(missing)
    if missing:
        vectors = _vectors(session, {cid: texts[cid] for cid in missing}, embedder)
        types = classify_conversation_types([texts[cid] for cid in missing], vectors, _prototypes(embedder))
        rows = [
            dict(conversation_id=cid, stage=STAGE, input_hash=hashes[cid], model=model,
                 version=CONVERSATION_TYPE_VERSION,
                 output={"type": t.type, "confidence": t.confidence, "cues": t.cues})
            for cid, t in zip(missing, types, strict=True)
        ]  # fmt: skip
        session.execute(insert(Analysis).values(rows).on_conflict_do_nothing())
        result.computed = len(missing)
    return result


def _vectors(session: Session, texts: dict[int, str], embedder: Embedder) -> np.ndarray:
    """Embeddings stored by the embed stage for these texts; computes only what is absent."""
    keys = {cid: input_hash(embedder.model_name, text) for cid, text in texts.items()}
    stored = dict(
        session.execute(
            select(Embedding.conversation_id, Embedding.vector).where(
                Embedding.model == embedder.model_name,
                tuple_(Embedding.conversation_id, Embedding.input_hash).in_(list(keys.items())),
            )
        ).all()
    )
    absent = [cid for cid in texts if cid not in stored]
    if absent:
        stored.update(zip(absent, embedder.embed([texts[cid] for cid in absent]), strict=True))
    return np.stack([np.asarray(stored[cid], dtype=np.float32) for cid in texts])


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

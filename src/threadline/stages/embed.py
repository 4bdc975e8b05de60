"""Stage `embed`: one vector per conversation's customer text, and its offline conversation type.

The vector is reused while the text is unchanged (keyed by conversation, model and input
hash). The type needs the text and the vector, which the batch holds in memory at that
point, so it is computed here rather than in a pass of its own that would read every text
and vector back; it is cached in `analyses` under the same kind of content-addressed key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from threadline.ai.embeddings import (
    BACKEND_MODELS,
    WEIGHTS_SHA256,
    Embedder,
    backend_of_model,
    embedder_for_backend,
    planned_backend,
    process_embedder,
    provided_backends,
)
from threadline.analysis.conversation_type import (
    CONVERSATION_TYPE_VERSION,
    TYPE_ANALYSIS,
    PrototypeSet,
    build_prototypes,
    classify_conversation_types,
)
from threadline.analysis.prototype_vectors import shipped_prototypes
from threadline.db.analyses import cached_conversation_ids, store_analyses
from threadline.db.vectors import insert_embeddings, load_stored_vectors, stored_embedding_ids
from threadline.engine.errors import PermanentError
from threadline.engine.stage import BatchOutcome, PerConversationStage, StageContext
from threadline.stages.inputs import input_hash, load_customer_texts

NAME = "embed"
VERSION = f"vector+type-{CONVERSATION_TYPE_VERSION}"


@dataclass
class EmbedResult:
    """Outcome of one batch; counters are summed from these, never kept in shared state.

    `texts` and `vectors` (the ones computed now) let the type step of the same batch
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


@dataclass
class TypeResult:
    computed: int = 0
    reused: int = 0


def embed_conversations(session: Session, conversation_ids: Sequence[int], embedder: Embedder) -> EmbedResult:
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


_prototypes_lock = threading.Lock()
_prototypes_by_model: dict[str, PrototypeSet] = {}  # one entry per embedding model a process uses


def _prototypes(embedder: Embedder) -> PrototypeSet:
    """The type prototypes embedded by `embedder`, once per process (worker threads wait for the first)."""
    with _prototypes_lock:
        found = _prototypes_by_model.get(embedder.model_name)
        if found is None:
            found = shipped_prototypes(embedder.model_name, WEIGHTS_SHA256) or build_prototypes(embedder.embed)
            _prototypes_by_model[embedder.model_name] = found
        return found


def type_model_key(embedder: Embedder) -> str:
    """`analyses.model` of types: the rules plus the model whose vectors they compare."""
    return f"rules+{embedder.model_name}"


def classify_conversations(
    session: Session,
    texts: Mapping[int, str],
    embedder: Embedder,
    vectors: Mapping[int, np.ndarray],
) -> TypeResult:
    """Store the type of each conversation of `texts` whose current customer text has no cached result.

    `vectors` holds the vectors the batch computed now; others are read from `embeddings`,
    and computed only when none is stored.
    """
    result = TypeResult()
    model = type_model_key(embedder)
    hashes = {cid: input_hash(TYPE_ANALYSIS, text) for cid, text in texts.items()}
    cached = cached_conversation_ids(
        session, stage=TYPE_ANALYSIS, model=model, version=CONVERSATION_TYPE_VERSION, keys=hashes
    )
    missing = [cid for cid in hashes if cid not in cached]
    result.reused = len(hashes) - len(missing)
    if missing:
        matrix = _vectors(session, {cid: texts[cid] for cid in missing}, embedder, known=vectors)
        types = classify_conversation_types([texts[cid] for cid in missing], matrix, _prototypes(embedder))
        rows = [
            dict(
                conversation_id=cid,
                stage=TYPE_ANALYSIS,
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


#: Run parameter holding the embedding backend fixed at the run's creation (`plan`).
BACKEND_PARAM = "embedding_backend"
#: Run parameter holding that backend's `model_name`: the key of the run's vectors, read by later stages.
MODEL_PARAM = "embedding_model"
#: Prefix of the procrastinate queue of a backend's embed batches: `threadline.embed.<backend>`.
QUEUE_PREFIX = "threadline.embed."


def plan() -> dict[str, Any]:
    """Fix the run's backend at creation: the setting's choice, or `auto`'s, decided without loading a model."""
    backend = planned_backend()
    return {BACKEND_PARAM: backend, MODEL_PARAM: BACKEND_MODELS[backend]}


def queue(params: Mapping[str, Any]) -> str | None:
    """Embed batches go to the queue of the run's backend, so only workers providing it take them."""
    backend = params.get(BACKEND_PARAM)
    return f"{QUEUE_PREFIX}{backend}" if backend else None


def worker_queues() -> list[str]:
    """The embed queues of the backends this process can provide (loads and checks ONNX when allowed)."""
    return [f"{QUEUE_PREFIX}{backend}" for backend in provided_backends()]


def run_embedder(params: Mapping[str, Any]) -> Embedder:
    """The embedder of the run's backend (runs created before backends were planned: the process's).

    Raises `PermanentError` when that embedder's vectors are not the model the run was planned
    with (an upgrade that changed the backend's recipe while the run was under way): its stages
    read vectors by the planned model's name, so vectors of another model would go unseen.
    """
    backend = params.get(BACKEND_PARAM)
    embedder = embedder_for_backend(str(backend)) if backend else process_embedder()
    planned = params.get(MODEL_PARAM)
    # (A stand-in embedder, a test's, serves every run of its process under its own name.)
    if planned and embedder.model_name != planned and backend_of_model(embedder.model_name) is not None:
        raise PermanentError(
            f"this run was planned for {planned} vectors, but this worker's {backend} backend makes "
            f"{embedder.model_name} vectors (the backend changed since the run was created); start a new run"
        )
    return embedder


def run(context: StageContext, ids: Sequence[int]) -> BatchOutcome:
    """Vectors, then types from the texts and vectors still in memory (counter `typed`: types computed)."""
    embedder = run_embedder(context.params)
    embedded = embed_conversations(context.session, ids, embedder)
    typed = classify_conversations(context.session, embedded.texts, embedder, embedded.vectors)
    return BatchOutcome(
        done=[cid for cid in ids if cid not in embedded.skipped],
        skipped=dict(embedded.skipped),
        computed=embedded.computed,
        reused=embedded.reused,
        extra_counters={"typed": typed.computed},
    )


STAGE = PerConversationStage(
    name=NAME,
    version=VERSION,
    position=10,
    run=run,
    local=True,
    plan=plan,
    queue=queue,
    worker_queues=worker_queues,
)

"""The conversation-type prototypes, embedded once by the maintainers and shipped with the package.

Embedding the 65 prototype sentences costs every new process ~0.2 s of model time. Their
vectors depend only on the sentences and the model's weights, so they are computed by
`python -m threadline.analysis.prototype_vectors` and stored next to this module with a
key over both. A process whose sentences or model differ from the key (an edited
prototype, a test's stand-in embedder) embeds them itself, as before.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from threadline.ai.embeddings import MODEL_NAME, WEIGHTS_SHA256, get_embedder
from threadline.analysis.conversation_type import PROTOTYPES, TYPES, PrototypeSet, build_prototypes

logger = logging.getLogger(__name__)

VECTORS_FILE = Path(__file__).with_name("type_prototypes.npz")


def prototype_key(model_name: str, weights_sha256: str) -> str:
    """SHA-256 over the model's identity and every prototype sentence, in row order."""
    digest = hashlib.sha256(f"{model_name}\n{weights_sha256}\n".encode())
    for kind in TYPES:
        for sentence in PROTOTYPES[kind]:
            digest.update(f"{kind}\t{sentence}\n".encode())
    return digest.hexdigest()


def shipped_prototypes(model_name: str, weights_sha256: str, path: Path = VECTORS_FILE) -> PrototypeSet | None:
    """The shipped prototype vectors when they were made from these sentences by this model, else None."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as stored:
        if str(stored["key"]) != prototype_key(model_name, weights_sha256):
            logger.info("shipped type prototypes do not match the current sentences or model; embedding them")
            return None
        matrix = np.asarray(stored["vectors"], dtype=np.float32)
    types = tuple(kind for kind in TYPES for _ in PROTOTYPES[kind])
    if matrix.shape[0] != len(types):
        return None
    return PrototypeSet(matrix, types)


@lru_cache(maxsize=1)
def default_prototypes() -> PrototypeSet:
    """Prototypes of the local all-MiniLM-L6-v2: the shipped vectors, else embedded once per process."""
    shipped = shipped_prototypes(MODEL_NAME, WEIGHTS_SHA256)
    if shipped is not None:
        return shipped
    logger.info("embedding %d conversation-type prototypes", sum(map(len, PROTOTYPES.values())))
    return build_prototypes(get_embedder().embed)


def write_shipped_prototypes(path: Path = VECTORS_FILE) -> Path:
    """Embed the prototypes with the local model and store them with their key (a maintainer step)."""
    prototypes = build_prototypes(get_embedder().embed)
    np.savez(path, key=np.array(prototype_key(MODEL_NAME, WEIGHTS_SHA256)), vectors=prototypes.matrix)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    logger.info("wrote %s", write_shipped_prototypes())

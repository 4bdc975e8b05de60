"""Local embeddings: verified weights, offline load, normalised vectors."""

import numpy as np
import pytest

from threadline.ai.embeddings import DIMENSIONS, LocalEmbedder, ModelIntegrityError, model_dir, verify_weights


def test_packaged_weights_match_the_upstream_sha256():
    verify_weights(model_dir())


def test_tampered_weights_are_refused_with_a_clear_error(tmp_path):
    for item in model_dir().iterdir():
        if item.name != "model.safetensors":
            (tmp_path / item.name).symlink_to(item)
    (tmp_path / "model.safetensors").write_bytes(b"not the model")
    with pytest.raises(ModelIntegrityError, match="refusing to use them"):
        LocalEmbedder(tmp_path)


def test_missing_weights_are_refused(tmp_path):
    with pytest.raises(ModelIntegrityError, match="not found"):
        verify_weights(tmp_path)


def test_embeddings_are_normalised_and_similar_texts_are_close(embedder):
    vectors = embedder.embed(["The CSV export times out", "Exporting to CSV never finishes", "I love the new logo"])
    assert vectors.shape == (3, DIMENSIONS) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2

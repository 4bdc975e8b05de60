"""Extractive theme and group names: length, distinctness, contrast and representatives."""

from __future__ import annotations

import numpy as np

from threadline.themes.naming import (
    EDGE_WORDS,
    FIRST_PERSON,
    MAX_NAME_WORDS,
    MIN_NAME_WORDS,
    STOP_WORDS,
    ThemeName,
    name_groups,
    name_themes,
    name_words,
)

CARD_ARRIVAL = [
    "My new card has not arrived yet",
    "When will my card arrive?",
    "Still waiting for my card to arrive, ordered two weeks ago",
    "The card I ordered has not arrived",
    "How long does it take for a new card to arrive",
    "card not arrived after 10 days",
]
CARD_DECLINED = [
    "My card payment was declined at the shop",
    "Why was my card declined?",
    "Card declined when paying online",
    "The restaurant said my card was declined",
    "card payment declined again today",
    "Why does my card keep getting declined",
]
PASSWORD = [
    "How do I reset my password?",
    "I forgot my password and cannot log in",
    "Password reset email never came",
    "Can't log in, need to reset password",
    "reset password link expired",
]
TOP_UP = [
    "My top up failed",
    "Top up did not go through",
    "Why did my top up fail?",
    "top up is still pending",
    "the top up failed twice",
]


TOP_UP_REVERTED = [
    "My top up was reverted",
    "Why was my top up reverted?",
    "The top up was reverted after a few minutes",
    "top up was reverted by the app",
    "I topped up but the top up was reverted",
]


def _word_count_ok(name: ThemeName) -> bool:
    return MIN_NAME_WORDS <= name_words(name.name) <= MAX_NAME_WORDS


def _centroids(embedder, themes: dict[int, list[str]]) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    vectors = {t: embedder.embed(texts) for t, texts in themes.items()}
    centroids = {t: v.mean(axis=0) / np.linalg.norm(v.mean(axis=0)) for t, v in vectors.items()}
    return centroids, vectors


def test_names_are_phrases_without_first_person_or_dangling_function_words() -> None:
    names = name_themes({0: CARD_ARRIVAL, 1: CARD_DECLINED, 2: PASSWORD, 3: TOP_UP, 4: TOP_UP_REVERTED})
    for named in names.values():
        words = named.name.lower().split()
        assert not FIRST_PERSON & set(words), named.name
        assert words[0] not in STOP_WORDS | EDGE_WORDS and words[-1] not in STOP_WORDS | EDGE_WORDS, named.name
        assert words[-1] != "top" and words[0] != "up", named.name  # "top up" is never cut in two


def test_embedding_choice_names_what_differs_from_the_neighbour(embedder) -> None:
    """Two top-up themes: the one about reversals is named by "reverted", not by the shared "top up failed"."""
    themes = {0: TOP_UP, 1: TOP_UP_REVERTED, 2: CARD_ARRIVAL, 3: PASSWORD}
    centroids, vectors = _centroids(embedder, themes)
    names = name_themes(themes, centroids=centroids, member_vectors=vectors, embed=embedder.embed)
    assert "revert" in names[1].name.lower(), names[1].name
    assert "revert" not in names[0].name.lower(), names[0].name
    assert all(_word_count_ok(n) for n in names.values())


def test_subject_lines_are_candidates_and_taken_names_are_avoided(embedder) -> None:
    themes = {0: CARD_ARRIVAL, 1: PASSWORD}
    centroids, vectors = _centroids(embedder, themes)
    subjects = {0: ["Card not delivered"] * 3 + [None] * 3, 1: ["Re: Password reset link", None, None, None, None]}
    names = name_themes(
        themes, centroids=centroids, member_vectors=vectors, embed=embedder.embed, subjects_by_theme=subjects
    )
    again = name_themes(
        themes,
        centroids=centroids,
        member_vectors=vectors,
        embed=embedder.embed,
        subjects_by_theme=subjects,
        taken={names[0].name.upper()},
    )
    assert again[0].name.lower() != names[0].name.lower()  # an existing theme keeps its name; the new one differs
    assert _word_count_ok(again[0])


def test_names_have_two_to_eight_words_and_keywords() -> None:
    names = name_themes({0: CARD_ARRIVAL, 1: CARD_DECLINED, 2: PASSWORD, 3: TOP_UP})
    assert set(names) == {0, 1, 2, 3}
    for n in names.values():
        assert _word_count_ok(n), n.name
        assert n.keywords and len(n.keywords) == len(set(n.keywords))


def test_names_contrast_neighbouring_themes() -> None:
    """Both card themes say "card"; their names must carry what differs."""
    names = name_themes({0: CARD_ARRIVAL, 1: CARD_DECLINED, 2: PASSWORD, 3: TOP_UP})
    assert "arriv" in names[0].name.lower()
    assert "declined" in names[1].name.lower()
    assert "password" in names[2].name.lower()
    assert "top up" in names[3].name.lower()  # not dropped as stop words
    assert "declined" not in " ".join(names[0].keywords[:3])
    assert "arrive" not in " ".join(names[1].keywords[:3])


def test_siblings_get_distinct_names_even_when_texts_coincide() -> None:
    texts = {0: PASSWORD, 1: list(PASSWORD), 2: PASSWORD[:4], 3: CARD_ARRIVAL}
    names = name_themes(texts, sibling_groups={0: 0, 1: 0, 2: 0, 3: 1})
    sibling_names = [names[t].name.lower() for t in (0, 1, 2)]
    assert len(set(sibling_names)) == 3, sibling_names
    assert all(_word_count_ok(names[t]) for t in names)


def test_distinct_across_all_themes_without_groups() -> None:
    names = name_themes({0: TOP_UP, 1: list(TOP_UP), 2: TOP_UP[::-1]})
    assert len({n.name.lower() for n in names.values()}) == 3


def test_representative_is_member_closest_to_centroid() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(CARD_ARRIVAL), 8))
    centroid = vecs[3] + 0.01 * rng.normal(size=8)
    names = name_themes(
        {0: CARD_ARRIVAL, 1: PASSWORD},
        centroids={0: centroid, 1: rng.normal(size=8)},
        member_vectors={0: vecs, 1: rng.normal(size=(len(PASSWORD), 8))},
    )
    assert names[0].representative_index == 3
    assert 0 <= names[1].representative_index < len(PASSWORD)


def test_representative_without_vectors_uses_keywords() -> None:
    names = name_themes({0: ["hello", *PASSWORD], 1: TOP_UP})
    assert names[0].representative_index != 0  # a greeting says nothing about the theme


def test_degenerate_texts_still_get_valid_distinct_names() -> None:
    names = name_themes({0: ["", "  "], 1: ["hi", "thanks"], 2: ["ok"]})
    assert all(_word_count_ok(n) for n in names.values())
    assert len({n.name for n in names.values()}) == 3
    assert name_themes({}) == {}


def test_group_names_follow_the_same_rules() -> None:
    groups = name_groups({0: CARD_ARRIVAL + CARD_DECLINED, 1: PASSWORD + TOP_UP, 2: list(PASSWORD)})
    assert all(_word_count_ok(n) for n in groups.values())
    assert len({n.name.lower() for n in groups.values()}) == 3
    assert "card" in groups[0].name.lower()


def test_naming_is_deterministic() -> None:
    themes = {0: CARD_ARRIVAL, 1: CARD_DECLINED, 2: PASSWORD, 3: TOP_UP}
    assert name_themes(themes) == name_themes(themes)

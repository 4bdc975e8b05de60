"""Extractive theme names without an LLM.

A name is the key phrase that (a) many members of the theme use, (b) is rare in the
other themes (class-based TF-IDF) and (c) is rarer still in the *nearest* themes, so two
neighbouring themes about cards are told apart by what differs ("card delivery" vs
"card payment declined"), not by what they share. Names are 2 to 6 words and distinct
within a sibling group.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

__all__ = ["NAMING_VERSION", "ThemeName", "name_groups", "name_themes"]

logger = logging.getLogger(__name__)

NAMING_VERSION = "ctfidf-contrast-0.2"

MIN_NAME_WORDS = 2  # words: a single word ("card") does not say what the problem is
MAX_NAME_WORDS = 6  # words: longer stops being a name and becomes a sentence
MAX_PHRASE_WORDS = 4  # n-gram length for key phrases: longer n-grams are almost never shared verbatim
MAX_KEYWORDS = 10  # key phrases returned per theme: enough for a tooltip/search, short enough to read
CONTRAST_NEIGHBOURS = 3  # nearest themes a name must stand apart from
MIN_PHRASE_COVERAGE = 0.05  # share of a theme's texts that must contain a phrase for it to be a candidate
PHRASE_NAME_MIN_RATIO = 0.5  # a multi-word phrase names the theme if it scores >= half the best phrase
NAME_CAPITALISED_SHARE = 0.8  # mid-sentence occurrences written Capitalised for a word to count as a name
NAME_MIN_OCCURRENCES = 3  # mid-sentence occurrences needed before judging capitalisation
NAME_SPREAD_SHARE = 0.25  # share of themes a name must appear in to be kept out of names as uninformative
MIN_THEMES_FOR_SPREAD = 4  # themes: with fewer, "appears in a quarter of the themes" is not evidence of anything
ANALYZER_CACHE_TEXTS = 20_000  # texts whose phrases are kept between calls: theme and group naming read the same texts; bounded for long-lived workers
MAX_VOCABULARY = 50_000  # distinct phrases kept (most frequent): bounds memory on 100k-text runs

# Function words only. sklearn's English list also drops content words that matter in
# support ("top up", "card not working", "cannot log in", "bill"), so it is not used.
STOP_WORDS = frozenset(
    """
    a about above after again am an and any are as at be been before being below between
    both but by can could did do does doing during each few for from had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most
    my myself of on once only or other our ours ourselves own same she should so some such
    than that the their theirs them themselves then there these they this those through to
    too very was we were what when where which while who whom why will with would you your
    yours yourself yourselves hi hello hey thanks thank please ok okay yes yeah also still
    im ive id dont doesnt didnt cant wont isnt arent wasnt i'm i've i'd it's don't doesn't
    didn't can't won't isn't aren't wasn't that's there's what's need want like know
    get got just really much many one way
    """.split()
)
_MID_SENTENCE_WORD = re.compile(r"[a-z,][ \t]+([A-Za-z][a-zA-Z]+)")  # a word after a lower-case word or comma
_TOKEN = re.compile(r"(?u)\b[a-zA-Z][a-zA-Z0-9']+\b")


@dataclass(frozen=True)
class ThemeName:
    """Human-readable label of a theme."""

    name: str  # 2 to 6 words, what a product manager would write, distinct between siblings
    keywords: list[str]  # distinctive key phrases, best first
    representative_index: int  # index (into that theme's texts) of the most representative text


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens; apostrophes kept so names read "isn't", not "isnt"."""
    return [t.strip("'") for t in _TOKEN.findall(text.lower().replace("\u2019", "'"))]


@lru_cache(maxsize=ANALYZER_CACHE_TEXTS)
def _analyzer(text: str) -> tuple[str, ...]:
    """N-grams (1..MAX_PHRASE_WORDS) that neither start nor end with a function word, counted once per text."""
    toks = _tokens(text)
    grams: set[str] = set()
    for n in range(1, MAX_PHRASE_WORDS + 1):
        for i in range(len(toks) - n + 1):
            gram = toks[i : i + n]
            if gram[0] in STOP_WORDS or gram[-1] in STOP_WORDS:
                continue
            if len(set(gram)) < n:  # "card card" style repetitions
                continue
            grams.add(" ".join(gram))
    return tuple(sorted(grams))


def _coverage(texts_by_theme: Mapping[int, list[str]], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(themes x phrases) share of each theme's texts containing each phrase, and the phrase strings."""
    docs: list[str] = []
    owner: list[int] = []
    for row, tid in enumerate(ids):
        docs.extend(texts_by_theme[tid])
        owner.extend([row] * len(texts_by_theme[tid]))
    vec = CountVectorizer(analyzer=_analyzer, binary=True, max_features=MAX_VOCABULARY)
    try:
        x = vec.fit_transform(docs)
    except ValueError:  # empty vocabulary: no usable words at all
        return np.zeros((len(ids), 0)), np.zeros(0, dtype=object)
    onehot = sparse.csr_matrix((np.ones(len(owner)), (owner, np.arange(len(owner)))), shape=(len(ids), len(owner)))
    counts = np.asarray((onehot @ x).todense(), dtype=np.float64)
    sizes = np.array([max(len(texts_by_theme[t]), 1) for t in ids], dtype=np.float64)[:, None]
    return counts / sizes, vec.get_feature_names_out()


def _widespread_names(
    texts_by_theme: Mapping[int, list[str]], ids: list[int], cov: np.ndarray, phrases: np.ndarray
) -> set[str]:
    """Words that look like people's or places' names and occur across many themes.

    A word counts as a name when, in the middle of a sentence, it is written Capitalised
    (not ALL CAPS, which is usually a product or acronym: ATM, UK) at least
    ``NAME_CAPITALISED_SHARE`` of the time. Names spread over ``NAME_SPREAD_SHARE`` of the
    themes ("Susan", "Shadyside" in every booking dialogue) say nothing about any one
    theme, so they are kept out of theme names (they stay in the keywords).
    """
    capital: dict[str, int] = {}
    total: dict[str, int] = {}
    for tid in ids:
        for text in texts_by_theme[tid]:
            for match in _MID_SENTENCE_WORD.finditer(text):
                word = match.group(1)
                key = word.lower()
                total[key] = total.get(key, 0) + 1
                if word[0].isupper() and not word.isupper():
                    capital[key] = capital.get(key, 0) + 1
    names = {
        w for w, n in total.items() if n >= NAME_MIN_OCCURRENCES and capital.get(w, 0) >= NAME_CAPITALISED_SHARE * n
    }
    if not names or cov.shape[1] == 0:
        return set()
    column = {str(p): j for j, p in enumerate(phrases)}
    spread = {
        w for w in names if w in column and (cov[:, column[w]] >= MIN_PHRASE_COVERAGE).mean() >= NAME_SPREAD_SHARE
    }
    return spread


def _neighbours(ids: list[int], centroids: Mapping[int, np.ndarray] | None, cov: np.ndarray) -> list[np.ndarray]:
    """Row indices of the CONTRAST_NEIGHBOURS most similar themes, by centroid or else by phrase profile."""
    if len(ids) < 2:
        return [np.zeros(0, dtype=np.int64) for _ in ids]
    if centroids is not None and all(t in centroids for t in ids):
        m = np.stack([np.asarray(centroids[t], dtype=np.float64) for t in ids])
    else:
        m = cov.copy()
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    s = m @ m.T
    np.fill_diagonal(s, -np.inf)
    k = min(CONTRAST_NEIGHBOURS, len(ids) - 1)
    return [np.argsort(-row, kind="stable")[:k] for row in s]


def _scores(cov: np.ndarray, neighbours: list[np.ndarray]) -> np.ndarray:
    """Phrase score per theme: coverage x class-IDF x contrast with the nearest themes."""
    n_themes = cov.shape[0]
    idf = np.log1p(n_themes / np.maximum(cov.sum(axis=0), 1e-9))
    scores = cov * idf
    for row, nb in enumerate(neighbours):
        if nb.size:
            contrast = np.clip(cov[row] - cov[nb].max(axis=0), 0.0, None)
            scores[row] *= 0.5 + contrast  # shared-with-neighbour phrases are halved, distinctive ones kept
    scores[cov < MIN_PHRASE_COVERAGE] = 0.0
    return scores


def _joining_phrase(words: set[str], theme_phrases: Mapping[str, float]) -> str | None:
    """The theme's most common phrase (<= MAX_NAME_WORDS words) that contains all ``words``.

    Lets "long" + "take" become "long does it take" in the members' own word order
    instead of an ungrammatical "long take".
    """
    best: tuple[float, int, str] | None = None
    for phrase, coverage in theme_phrases.items():
        parts = phrase.split()
        if len(parts) > MAX_NAME_WORDS or not words <= set(parts) or coverage < MIN_PHRASE_COVERAGE:
            continue
        key = (coverage, -len(parts), phrase)
        if best is None or key > best:
            best = key
    return best[2] if best else None


def _candidates(ranked: list[tuple[str, float]], style: str, theme_phrases: Mapping[str, float]) -> list[str]:
    """Candidate names, best first, from key phrases ranked by score.

    A multi-word phrase is used as is when it scores at least ``PHRASE_NAME_MIN_RATIO``
    of the best phrase (it then says the theme's point in the members' own words);
    otherwise the best phrase is combined with the next phrase that adds new words,
    preferring a phrase members actually wrote that contains both ("card" + "declined"
    -> "card was declined"). Groups are broad areas, so their fallback lists the
    leading key phrases ("card: declined, arrive").
    """
    if not ranked:
        return []
    top_score = ranked[0][1]
    phrases = [p for p, _ in ranked]
    out = [p for p, sc in ranked[:3] if len(p.split()) >= MIN_NAME_WORDS and sc >= PHRASE_NAME_MIN_RATIO * top_score]
    if style == "group":
        listed: list[str] = []
        for p in phrases:
            if not any(set(p.split()) & set(q.split()) for q in listed):
                listed.append(p)
        if len(listed) >= 3:
            out.append(f"{listed[0]}: {listed[1]}, {listed[2]}")
    for first in phrases[:3]:
        for second in phrases[1:]:
            words = first.split() + [w for w in second.split() if w not in first.split()]
            if len(words) == len(first.split()):
                continue
            joined = _joining_phrase(set(words), theme_phrases)
            out.append(joined if joined is not None else " ".join(words))
    out.extend(p for p in phrases if len(p.split()) >= MIN_NAME_WORDS)
    return out


def _compose(ranked: list[tuple[str, float]], taken: set[str], style: str, theme_phrases: Mapping[str, float]) -> str:
    """First 2-6 word candidate name not already ``taken`` (case-insensitive)."""
    for cand in _candidates(ranked, style, theme_phrases):
        words = cand.replace(":", " ").replace(",", " ").split()
        name = cand[0].upper() + cand[1:]
        if MIN_NAME_WORDS <= len(words) <= MAX_NAME_WORDS and name.lower() not in taken:
            return name
    base = " ".join((ranked[0][0] if ranked else "other").split()[: MAX_NAME_WORDS - 2])
    i = 1
    while True:
        name = f"{base} topic {i}"
        name = name[0].upper() + name[1:]
        if name.lower() not in taken:
            return name
        i += 1


def _representative(
    texts: list[str], vectors: np.ndarray | None, centroid: np.ndarray | None, keywords: list[str]
) -> int:
    """Index of the member closest to the centroid; without vectors, the text covering most keywords."""
    if not texts:
        return 0
    if vectors is not None and len(vectors) == len(texts):
        v = np.asarray(vectors, dtype=np.float64)
        c = np.asarray(centroid, dtype=np.float64) if centroid is not None else v.mean(axis=0)
        return int(np.argmax(v @ c))
    grams = [set(_analyzer(t)) for t in texts]
    weights = {k: len(keywords) - i for i, k in enumerate(keywords)}
    score = [sum(weights.get(g, 0) for g in gs) - 1e-3 * len(t) for gs, t in zip(grams, texts, strict=True)]
    return int(np.argmax(score))


def name_themes(
    texts_by_theme: dict[int, list[str]],
    *,
    centroids: dict[int, np.ndarray] | None = None,
    member_vectors: dict[int, np.ndarray] | None = None,
    sibling_groups: dict[int, int] | None = None,
    style: str = "theme",
) -> dict[int, ThemeName]:
    """Name every theme from what its members share and what sets it apart from its nearest themes.

    ``sibling_groups`` maps theme id -> group id; names are distinct within a group (and
    across all themes when no groups are given). ``member_vectors[t]`` rows align with
    ``texts_by_theme[t]`` and pick the representative text. ``style="group"`` is used by
    :func:`name_groups`.
    """
    ids = sorted(texts_by_theme)
    if not ids:
        return {}
    cov, phrases = _coverage(texts_by_theme, ids)
    scores = _scores(cov, _neighbours(ids, centroids, cov)) if phrases.size else cov
    banned = _widespread_names(texts_by_theme, ids, cov, phrases) if len(ids) >= MIN_THEMES_FOR_SPREAD else set()
    taken: dict[int, set[str]] = {}
    out: dict[int, ThemeName] = {}
    # Name the biggest themes first so they get the plainest names.
    for row in sorted(range(len(ids)), key=lambda r: (-len(texts_by_theme[ids[r]]), ids[r])):
        tid = ids[row]
        positive = np.flatnonzero(scores[row] > 0) if phrases.size else np.zeros(0, dtype=np.int64)
        order = positive[np.argsort(-scores[row, positive], kind="stable")]  # best first, ties by phrase index
        ranked = [(str(phrases[j]), float(scores[row, j])) for j in order]
        ranked = _dedupe(ranked)[:MAX_KEYWORDS]
        keywords = [p for p, _ in ranked]
        group = sibling_groups.get(tid, 0) if sibling_groups is not None else 0
        used = taken.setdefault(group, set())
        present = np.flatnonzero(cov[row] >= MIN_PHRASE_COVERAGE) if phrases.size else np.zeros(0, dtype=np.int64)
        nameable = [(p, sc) for p, sc in ranked if not banned & set(p.split())] or ranked
        name = _compose(
            nameable,
            used,
            style,
            {str(phrases[j]): float(cov[row, j]) for j in present if not banned & set(str(phrases[j]).split())},
        )
        used.add(name.lower())
        rep = _representative(
            texts_by_theme[tid],
            member_vectors.get(tid) if member_vectors else None,
            centroids.get(tid) if centroids else None,
            keywords,
        )
        out[tid] = ThemeName(name=name, keywords=keywords, representative_index=rep)
    return out


def _dedupe(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Drop phrases whose words are all inside a better-ranked phrase ("card" after "new card")."""
    kept: list[tuple[str, float]] = []
    for p, sc in ranked:
        words = set(p.split())
        if any(words <= set(k.split()) for k, _ in kept):
            continue
        kept.append((p, sc))
    return kept


def name_groups(
    texts_by_group: dict[int, list[str]],
    *,
    centroids: dict[int, np.ndarray] | None = None,
    member_vectors: dict[int, np.ndarray] | None = None,
) -> dict[int, ThemeName]:
    """Name top-level groups (all groups are siblings of each other); same rules as themes.

    ``texts_by_group[g]`` holds the texts of every theme in group ``g``.
    """
    return name_themes(
        texts_by_group, centroids=centroids, member_vectors=member_vectors, sibling_groups=None, style="group"
    )

"""Theme names without an LLM: short phrases the members use, chosen to tell a theme from its neighbours.

Two steps:

1. **Candidates** come from what the data offers: word sequences of 2 to
   ``MAX_CANDIDATE_WORDS`` words that several members wrote (inside one sentence and one
   clause, first-person words dropped, never starting or ending with a function word,
   auxiliary or filler), and the conversations' subject lines where they have them. A
   lexical score (share of members using the phrase x class-IDF x contrast with the
   nearest themes, i.e. c-TF-IDF) keeps the ``CANDIDATES_PER_THEME`` best of each theme.
2. **Choice** (KeyBERT-style, when an embedding function is given): every candidate is
   embedded with the same model as the conversations and scored by its cosine to its own
   theme's centroid minus ``CONTRAST_WEIGHT`` times its cosine to the closest *other*
   theme, plus a small bonus for phrases many members use. The best candidate not yet
   taken by a sibling wins, so a theme next to a similar one is named by what differs
   ("top up reverted" beside "top up failed"). Without an embedding function the lexical
   ranking decides.

Why not the KeyBERT package: it scores a phrase against its own document only; the part
that separates siblings is the contrast with the other themes' centroids, which it has no
notion of, and the rest (a cosine and an argmax over precomputed vectors) is a few lines
over the embedder Threadline already runs. No phrase chunker with a packaged model is
available offline (spaCy's models are not on the package index), so phrase boundaries
come from word classes listed here.

Names are 2 to ``MAX_NAME_WORDS`` words, never a whole customer sentence (candidates are
at most ``MAX_CANDIDATE_WORDS`` words, subjects at most ``MAX_NAME_WORDS``), carry no
first person, and are distinct within a sibling group and from ``taken`` names (names of
existing themes, which keep theirs: a new sibling takes the next, distinguishing phrase).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from threadline.text.sentences import sentence_spans

__all__ = ["NAMING_VERSION", "Embed", "ThemeName", "name_groups", "name_themes", "name_words"]

logger = logging.getLogger(__name__)

NAMING_VERSION = "phrase-embed-contrast-1"

Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, d) L2-normalised vectors of the conversations' model

MIN_NAME_WORDS = 2  # words: a single word ("card") does not say what the problem is
MAX_NAME_WORDS = 8  # words: longer stops being a name and becomes a sentence
MAX_PHRASE_WORDS = 4  # n-gram length for key phrases: longer n-grams are almost never shared verbatim
MAX_CANDIDATE_WORDS = 6  # n-gram length for name candidates: long enough for "card payment declined abroad"
MAX_KEYWORDS = 10  # key phrases returned per theme: enough for a tooltip/search, short enough to read
CONTRAST_NEIGHBOURS = 3  # nearest themes a keyword must stand apart from
MIN_PHRASE_COVERAGE = 0.05  # share of a theme's texts that must contain a phrase for it to be a candidate
MIN_CANDIDATE_TEXTS = 2  # members that must use a phrase: one customer's wording is not the theme's
MIN_CANDIDATE_SHARE = 0.02  # share of the (sampled) members that must use a name candidate: 3 of 150
NAME_SAMPLE_TEXTS = 150  # central members whose text feeds name candidates: bounds work on 10k-member themes
CANDIDATES_PER_THEME = 40  # lexical best candidates embedded per theme: bounds model work to themes x 40 phrases
SUBJECTS_PER_THEME = 10  # most frequent subject lines per theme added as candidates
CONTRAST_WEIGHT = 1.0  # cosine to the closest other theme subtracted at this weight: what differs names the theme
COVERAGE_WEIGHT = 0.1  # bonus per unit share of members using a phrase: between near-equal phrases, the common one
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
# A name speaks of the problem, not of the people writing: subject pronouns end a candidate
# ("how do I freeze" gives no "how do freeze"), possessives and objects are left out
# ("verify my identity" -> "verify identity", "send me a card" -> "send a card").
SUBJECT_PRONOUNS = frozenset("i we you i'm i've i'd i'll we're we've we'd we'll you're you've you'd you'll".split())
FIRST_PERSON = frozenset("me my mine myself us our ours ourselves your yours yourself".split()) | SUBJECT_PRONOUNS
# Never at either edge of a name: auxiliaries, negations, fillers, time words, greetings.
EDGE_WORDS = frozenset(
    """
    hasn't haven't hadn't couldn't wouldn't shouldn't mustn't weren't not no nor
    yet already anymore ever never now today yesterday tomorrow tonight ago since until
    though although because whether every all lot lots bit thing things something anything
    someone anyone somebody anybody everyone guys hey dear regards cheers thx sorry asap etc couple kind sort
    able unable keep keeps kept make makes made let lets see say says said tell told guess
    think thought wonder wondering hope nice great good fine sure well actually basically
    new last next first same another several due wants wanted needs needed would shall
    may might must getting going go goes went take takes took come comes came back soon
    """.split()
)
# Particles of phrasal verbs: a name neither starts with one nor stops just before one ("top" of "top up").
PARTICLES = frozenset("up down out off over away around".split())
START_WORDS = frozenset({"how"})  # a function word a name may start with: "how to set up recurring invoices"
_MID_SENTENCE_WORD = re.compile(r"[a-z,][ \t]+([A-Za-z][a-zA-Z]+)")  # a word after a lower-case word or comma
_TOKEN = re.compile(r"(?u)\b[a-zA-Z][a-zA-Z0-9']+\b")
_SURFACE_TOKEN = re.compile(r"[A-Za-z](?:[A-Za-z0-9']|\.(?=[A-Za-z0-9]))*")  # "U.S" and "task.updated" stay one word
# clause edges inside a sentence: punctuation, dashes and the conjunctions that join two thoughts
_CLAUSE_BREAK = re.compile(
    r"[,;:()\[\]\"\u201c\u201d/|]|\s[-\u2013\u2014]\s|\b(?:but|because|although|though|however|so that)\b",
    re.IGNORECASE,
)
_SUBJECT_PREFIX = re.compile(r"^(?:(?:re|fw|fwd|aw|wg)\s*:\s*)+", re.IGNORECASE)


@dataclass(frozen=True)
class ThemeName:
    """Human-readable label of a theme."""

    name: str  # 2 to 8 words, what a product manager would write, distinct between siblings
    keywords: list[str]  # distinctive key phrases, best first
    representative_index: int  # index (into that theme's texts) of the most representative text


def name_words(name: str) -> int:
    """Words in a name as the 2-to-8-word rule counts them (punctuation is not a word)."""
    return len(_SURFACE_TOKEN.findall(name)) or len(name.split())


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens; apostrophes kept so names read "isn't", not "isnt"."""
    return [t.strip("'") for t in _TOKEN.findall(text.lower().replace("\u2019", "'"))]


@lru_cache(maxsize=ANALYZER_CACHE_TEXTS)
def _analyzer(text: str) -> tuple[str, ...]:
    """N-grams (1..MAX_PHRASE_WORDS) that neither start nor end with a function word, counted once per text."""
    toks = _tokens(text)
    content = [t not in STOP_WORDS for t in toks]  # may start or end an n-gram
    grams: set[str] = set()
    for i, first in enumerate(toks):
        if not content[i]:
            continue
        grams.add(first)
        for end in range(i + 2, min(i + MAX_PHRASE_WORDS, len(toks)) + 1):
            if content[end - 1]:
                gram = toks[i:end]
                if len(set(gram)) == end - i:  # not a "card card" style repetition
                    grams.add(" ".join(gram))
    return tuple(sorted(grams))


def _clauses(text: str) -> list[list[str]]:
    """Surface word tokens of each clause of each sentence, first-person words dropped.

    Sentences come from :func:`threadline.text.sentences.sentence_spans` (identifiers and
    dotted names stay whole); clauses split at commas, brackets, quotes and dashes, so a
    candidate never joins the end of one thought to the start of the next.
    """
    out: list[list[str]] = []
    text = text.replace("\u2019", "'")
    for start, end in sentence_spans(text):
        for clause in _CLAUSE_BREAK.split(text[start:end]):
            words: list[str] = []
            for word in (w.strip("'") for w in _SURFACE_TOKEN.findall(clause)):
                lower = word.lower()
                if lower in SUBJECT_PRONOUNS:
                    if len(words) >= MIN_NAME_WORDS:
                        out.append(words)
                    words = []
                elif word and lower not in FIRST_PERSON:
                    words.append(word)
            if len(words) >= MIN_NAME_WORDS:
                out.append(words)
    return out


def _edge_ok(word: str) -> bool:
    return word not in STOP_WORDS and word not in EDGE_WORDS and word not in PARTICLES and not word.isdigit()


def _ends_phrase(lower: list[str], after: int) -> bool:
    """True when a candidate ending before ``lower[after]`` does not cut a phrasal verb ("top" of "top up")."""
    return after >= len(lower) or lower[after] not in PARTICLES


@lru_cache(maxsize=ANALYZER_CACHE_TEXTS)
def _name_grams(text: str) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Name candidates of one text (lower case, each once) and (lower, surface) word pairs for casing."""
    grams: set[str] = set()
    surfaces: list[tuple[str, str]] = []
    for words in _clauses(text):
        lower = [w.lower() for w in words]
        surfaces.extend(
            zip(lower[1:], words[1:], strict=True)
        )  # mid-clause forms: sentence starts are capitalised anyway
        edge = [_edge_ok(w) for w in lower]
        # a candidate may end before position j: a word that can end a name, not followed by a particle
        ends = [False] + [edge[j - 1] and _ends_phrase(lower, j) for j in range(1, len(lower) + 1)]
        for i in range(len(lower)):
            if not (edge[i] or lower[i] in START_WORDS):
                continue
            for end in range(i + MIN_NAME_WORDS, min(i + MAX_CANDIDATE_WORDS, len(lower)) + 1):
                if ends[end]:
                    gram = lower[i:end]
                    if len(set(gram)) == end - i:
                        grams.add(" ".join(gram))
    return tuple(sorted(grams)), tuple(surfaces)


def _subject_candidate(subject: str) -> str | None:
    """A subject line as a name candidate (reply prefixes and first-person words dropped), or None."""
    words = [w.strip("'") for w in _SURFACE_TOKEN.findall(_SUBJECT_PREFIX.sub("", subject.replace("\u2019", "'")))]
    words = [w for w in words if w and w.lower() not in FIRST_PERSON]
    if not MIN_NAME_WORDS <= len(words) <= MAX_NAME_WORDS:
        return None
    if not (_edge_ok(words[0].lower()) or words[0][:1].isupper()) or not _edge_ok(words[-1].lower()):
        return None
    return " ".join(w.lower() for w in words)


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


def _similarity_rows(ids: list[int], centroids: Mapping[int, np.ndarray] | None, cov: np.ndarray) -> np.ndarray:
    """(themes x themes) cosine between themes, by centroid or else by phrase profile; diagonal -inf."""
    if centroids is not None and all(t in centroids for t in ids):
        m = np.stack([np.asarray(centroids[t], dtype=np.float64) for t in ids])
    else:
        m = cov.copy() if cov.size else np.eye(len(ids))
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    s = m @ m.T
    np.fill_diagonal(s, -np.inf)
    return s


def _neighbours(similarity: np.ndarray) -> list[np.ndarray]:
    """Row indices of the CONTRAST_NEIGHBOURS most similar themes of each theme."""
    n = similarity.shape[0]
    if n < 2:
        return [np.zeros(0, dtype=np.int64) for _ in range(n)]
    k = min(CONTRAST_NEIGHBOURS, n - 1)
    return [np.argsort(-row, kind="stable")[:k] for row in similarity]


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


def _dedupe(ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Drop phrases whose words are all inside a better-ranked phrase ("card" after "new card")."""
    kept: list[tuple[str, float]] = []
    for p, sc in ranked:
        words = set(p.split())
        if any(words <= set(k.split()) for k, _ in kept):
            continue
        kept.append((p, sc))
    return kept


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


def _central(texts: list[str], vectors: np.ndarray | None, centroid: np.ndarray | None) -> list[str]:
    """Up to NAME_SAMPLE_TEXTS members, the closest to the centroid first when vectors are given."""
    if len(texts) <= NAME_SAMPLE_TEXTS:
        return texts
    if vectors is None or len(vectors) != len(texts):
        return texts[:NAME_SAMPLE_TEXTS]
    v = np.asarray(vectors, dtype=np.float64)
    c = np.asarray(centroid, dtype=np.float64) if centroid is not None else v.mean(axis=0)
    order = np.argsort(-(v @ c), kind="stable")[:NAME_SAMPLE_TEXTS]
    return [texts[i] for i in sorted(order.tolist())]


@dataclass
class _Candidates:
    """Name candidates of every theme: phrase -> share of the theme's (sampled) members using it."""

    share: dict[int, dict[str, float]]
    casing: dict[str, str]  # lower-case word -> its most frequent mid-sentence spelling ("csv" -> "CSV")


def _collect_candidates(
    sampled: Mapping[int, list[str]], subjects_by_theme: Mapping[int, Sequence[str | None]] | None
) -> _Candidates:
    share: dict[int, dict[str, float]] = {}
    spellings: dict[str, dict[str, int]] = {}  # lower-case word -> spelling -> occurrences
    for tid, texts in sampled.items():
        counts: Counter[str] = Counter()
        for text in texts:
            grams, surfaces = _name_grams(text)
            counts.update(grams)
            for lower, surface in surfaces:
                forms = spellings.get(lower)
                if forms is None:  # not setdefault: that would build a throwaway dict per occurrence
                    forms = spellings[lower] = {}
                forms[surface] = forms.get(surface, 0) + 1
        size = max(len(texts), 1)
        floor = max(MIN_CANDIDATE_TEXTS, MIN_CANDIDATE_SHARE * size)
        found = {p: c / size for p, c in counts.items() if c >= floor}
        subjects = [s for s in (subjects_by_theme or {}).get(tid, ()) if s]
        if subjects:
            subject_counts = Counter(filter(None, (_subject_candidate(s) for s in subjects)))
            for phrase, count in subject_counts.most_common(SUBJECTS_PER_THEME):
                if count >= min(MIN_CANDIDATE_TEXTS, len(subjects)):
                    found[phrase] = max(found.get(phrase, 0.0), count / max(len(subjects), 1))
        share[tid] = found
    casing = {}
    for lower, forms in spellings.items():
        best, _ = max(forms.items(), key=lambda item: (item[1], item[0] == lower, item[0]))
        casing[lower] = best if best != best.capitalize() or best.isupper() else lower
    return _Candidates(share, casing)


def _lexical_rank(cands: _Candidates, ids: list[int], neighbours: list[np.ndarray]) -> dict[int, list[str]]:
    """Each theme's candidates ranked by share x class-IDF x contrast with its nearest themes."""
    themes_using: Counter[str] = Counter()
    for found in cands.share.values():
        themes_using.update(found.keys())
    n = len(ids)
    ranked: dict[int, list[str]] = {}
    for row, tid in enumerate(ids):
        found = cands.share[tid]
        near = [cands.share[ids[j]] for j in neighbours[row]]

        def score(phrase: str, found: dict[str, float] = found, near: list[dict[str, float]] = near) -> float:
            contrast = max(0.0, found[phrase] - max((other.get(phrase, 0.0) for other in near), default=0.0))
            return found[phrase] * math.log1p(n / themes_using[phrase]) * (0.5 + contrast)

        ranked[tid] = sorted(found, key=lambda p: (-score(p), -len(p.split()), p))[:CANDIDATES_PER_THEME]
    return ranked


def _embedding_rank(
    cands: _Candidates,
    ids: list[int],
    ranked: dict[int, list[str]],
    centroids: Mapping[int, np.ndarray],
    embed: Embed,
) -> dict[int, list[str]]:
    """Re-rank each theme's candidates by cosine to its centroid minus cosine to the closest other theme."""
    phrases = sorted({p for tid in ids for p in ranked[tid]})
    if not phrases:
        return ranked
    vectors = np.asarray(embed(phrases), dtype=np.float64)
    row_of = {p: i for i, p in enumerate(phrases)}
    cents = np.stack([np.asarray(centroids[t], dtype=np.float64) for t in ids])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    sims = vectors @ cents.T  # (phrases x themes)
    out: dict[int, list[str]] = {}
    for col, tid in enumerate(ids):
        rows = np.array([row_of[p] for p in ranked[tid]], dtype=np.int64)
        if rows.size == 0:
            out[tid] = []
            continue
        own = sims[rows, col]
        others = np.delete(sims[rows], col, axis=1)
        closest = others.max(axis=1) if others.shape[1] else np.zeros(rows.size)
        share = np.array([cands.share[tid][p] for p in ranked[tid]])
        score = own - CONTRAST_WEIGHT * closest + COVERAGE_WEIGHT * share
        order = np.lexsort((np.arange(rows.size), -score))
        out[tid] = [ranked[tid][i] for i in order]
    return out


def _display(phrase: str, casing: Mapping[str, str]) -> str:
    """A candidate as shown: each word in its usual spelling ("csv export" -> "CSV export"), first letter upper."""
    words = [casing.get(w, w) for w in phrase.split()]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _fallback(keywords: list[str], taken: set[str]) -> str:
    base = " ".join((keywords[0] if keywords else "other").split()[: MAX_NAME_WORDS - 2])
    i = 1
    while True:
        name = f"{base} topic {i}"
        name = name[0].upper() + name[1:]
        if name.lower() not in taken:
            return name
        i += 1


def name_themes(
    texts_by_theme: dict[int, list[str]],
    *,
    centroids: dict[int, np.ndarray] | None = None,
    member_vectors: dict[int, np.ndarray] | None = None,
    sibling_groups: dict[int, int] | None = None,
    subjects_by_theme: Mapping[int, Sequence[str | None]] | None = None,
    embed: Embed | None = None,
    taken: set[str] | None = None,
    style: str = "theme",
) -> dict[int, ThemeName]:
    """Name every theme from what its members write and what sets it apart from the other themes.

    ``sibling_groups`` maps theme id -> group id; names are distinct within a group (and
    across all themes when no groups are given) and never equal a name in ``taken``
    (case-insensitive). ``member_vectors[t]`` rows align with ``texts_by_theme[t]``; they
    pick the representative text and the central members whose phrases are candidates.
    ``subjects_by_theme[t]`` lists member subject lines (None where there is none).
    ``embed`` (the conversations' embedding model) turns on the embedding choice; it needs
    ``centroids``. ``style`` is "theme" or "group" (see :func:`name_groups`).
    """
    ids = sorted(texts_by_theme)
    if not ids:
        return {}
    cov, phrases = _coverage(texts_by_theme, ids)
    similarity = _similarity_rows(ids, centroids, cov)
    neighbours = _neighbours(similarity)
    scores = _scores(cov, neighbours) if phrases.size else cov
    banned = _widespread_names(texts_by_theme, ids, cov, phrases) if len(ids) >= MIN_THEMES_FOR_SPREAD else set()
    sampled = {
        t: _central(
            texts_by_theme[t],
            member_vectors.get(t) if member_vectors else None,
            centroids.get(t) if centroids else None,
        )
        for t in ids
    }
    cands = _collect_candidates(sampled, subjects_by_theme)
    for found in cands.share.values():
        for phrase in [p for p in found if banned & set(p.split())]:
            del found[phrase]
    ranked = _lexical_rank(cands, ids, neighbours)
    if embed is not None and centroids is not None and all(t in centroids for t in ids):
        ranked = _embedding_rank(cands, ids, ranked, centroids, embed)
    reserved = {n.lower() for n in (taken or set())}
    used_by_group: dict[int, set[str]] = {}
    out: dict[int, ThemeName] = {}
    # Name the biggest themes first so they get the plainest names.
    for row in sorted(range(len(ids)), key=lambda r: (-len(texts_by_theme[ids[r]]), ids[r])):
        tid = ids[row]
        positive = np.flatnonzero(scores[row] > 0) if phrases.size else np.zeros(0, dtype=np.int64)
        order = positive[np.argsort(-scores[row, positive], kind="stable")]  # best first, ties by phrase index
        keywords = [p for p, _ in _dedupe([(str(phrases[j]), float(scores[row, j])) for j in order])][:MAX_KEYWORDS]
        group = sibling_groups.get(tid, 0) if sibling_groups is not None else 0
        used = used_by_group.setdefault(group, set())
        name = next(
            (
                shown
                for shown in (_display(p, cands.casing) for p in ranked[tid])
                if shown.lower() not in used and shown.lower() not in reserved
            ),
            None,
        )
        if name is None:
            name = _fallback(keywords, used | reserved)
        used.add(name.lower())
        rep = _representative(
            texts_by_theme[tid],
            member_vectors.get(tid) if member_vectors else None,
            centroids.get(tid) if centroids else None,
            keywords,
        )
        out[tid] = ThemeName(name=name, keywords=keywords, representative_index=rep)
    return out


def name_groups(
    texts_by_group: dict[int, list[str]],
    *,
    centroids: dict[int, np.ndarray] | None = None,
    member_vectors: dict[int, np.ndarray] | None = None,
    embed: Embed | None = None,
) -> dict[int, ThemeName]:
    """Name top-level groups (all groups are siblings of each other); same rules as themes.

    ``texts_by_group[g]`` holds the texts of every theme in group ``g``.
    """
    return name_themes(
        texts_by_group,
        centroids=centroids,
        member_vectors=member_vectors,
        sibling_groups=None,
        embed=embed,
        style="group",
    )

"""Verbatim evidence: whole customer sentences, on the theme's topic, from distinct conversations.

A quote is an exact substring of a customer message with its offsets. Selection works on
plain data (sentences, their vectors, the run's theme centroids) so it can be tested and
reused without a database:

1. **Whole sentences** from :func:`threadline.text.sentences.sentence_spans` (identifiers,
   dotted names, e-mails, URLs, decimals and abbreviations stay whole; lines are never
   glued). A sentence longer than ``pipeline.max_quote_chars`` is cut at a word boundary.
2. **No small talk**: greetings, thanks, praise, apologies and sign-offs never serve as
   evidence for a problem (:func:`is_small_talk`), nor do sentences under
   ``MIN_QUOTE_WORDS`` words.
3. **From the theme's core** (:func:`core_conversations`): only the most *typical* half of
   a theme's members are quoted, the most typical first, and only those clearly closer to
   their theme's centroid than to the runner-up theme's (by ``MIN_CORE_MARGIN``). A member
   is typical when many fellow members count it among their nearest, so when a theme holds
   two problems its quotes come from the bigger one, and a stray conversation that joined
   the theme is never quoted.
4. **On topic**: a sentence's embedding must be closer to its own theme's centroid than to
   any other theme of the run, and at least ``MIN_QUOTE_SIMILARITY`` to its own.
5. **Variety**: one quote per conversation, new customers first, and no quote that says
   the same as one already chosen (same text, or cosine above ``DUPLICATE_SIMILARITY``).

When fewer than ``pipeline.min_evidence_quotes`` quotes qualify, the selection still returns what
there is and says why in its ``notes`` (thin or repetitive evidence), so no theme loses its
story silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from threadline.config import get_settings
from threadline.text.sentences import sentence_spans

__all__ = [
    "EVIDENCE_VERSION",
    "EvidenceSelection",
    "Quote",
    "Sentence",
    "candidate_sentences",
    "core_conversations",
    "is_small_talk",
    "select_evidence",
]

EVIDENCE_VERSION = "sentences-on-topic-core-3"  # 3: a whole-text sentence reuses its conversation's vector
MIN_QUOTE_WORDS = 4  # words: "hi there" or "any update?" says nothing about the problem
MAX_SENTENCES_PER_CONVERSATION = 12  # customer sentences considered per conversation: the problem is stated early
MIN_QUOTE_SIMILARITY = 0.25  # cosine of a sentence to its theme's centroid: below, it is about something else
FIRST_MESSAGE_BONUS = 0.05  # cosine points: the opening message states the problem; follow-ups add details
# A conversation can be in its theme's core only when its cosine to its own centroid exceeds its cosine
# to the runner-up theme's by at least this much: one that sits between two themes quotes neither.
MIN_CORE_MARGIN = 0.05
# Neighbours of a member: this share of the theme's other members, its nearest ones. Half: a group
# holding more than half of the theme finds all of them among its own members, so its members are
# picked as neighbours more often than those of a smaller group, however tight that one is.
CORE_NEIGHBOUR_SHARE = 0.5
# The core is this share of the theme's members, the most typical (see above) first. Half: when a
# theme holds a majority problem, the most typical half of its members all have it.
CORE_SHARE = 0.5
CORE_POOL_CONVERSATIONS = (
    400  # members closest to a theme's centre whose vectors are read to find its core: bounded work
)
DUPLICATE_SIMILARITY = 0.95  # cosine between two quotes above which the second shows nothing new
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\u2019]*")

# Small talk: a sentence that opens like this and has little else is not evidence.
_SMALL_TALK_START = re.compile(
    r"^\W*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings|thanks|thank you|thx|ty|many thanks"
    r"|cheers|regards|best(?: regards| wishes)?|kind regards|sorry|apologies|no worries|no problem|ok(?:ay)?"
    r"|great|perfect|awesome|amazing|excellent|wonderful|fantastic|brilliant|love|loving|big fan|kudos|well done"
    r"|congrats|congratulations|appreciate|have a (?:good|great|nice)|hope you|glad|happy to|you(?:'re| are) (?:the best|great|awesome)"
    r"|you guys (?:are|rock)|keep up)\b",
    re.IGNORECASE,
)
# Praise and thanks anywhere in a sentence: "the board is so much faster now, love it".
_PRAISE = re.compile(
    r"\b(?:thank(?:s| you)|appreciate(?:d)?|love (?:it|the|this|your|how)|big fan|fan of|great (?:job|work|service|support|app|update)"
    r"|so much (?:better|faster|easier)|amazing|fantastic|kudos|well done|awesome|you guys are|made our day|life ?saver)\b",
    re.IGNORECASE,
)
# Words that make a sentence about a problem even when it opens politely ("Thanks, but the export still fails").
_PROBLEM = re.compile(
    r"\b(?:not|no|never|can't|cannot|can not|couldn't|won't|doesn't|don't|didn't|isn't|aren't|wasn't|unable|fail\w*|error\w*"
    r"|broken|bug|crash\w*|stuck|wrong|missing|lost|declined|problem|issue|still|again|twice|instead"
    r"|why\s+(?:is|are|was|were|does|did|do|can|can't|won't)|how\s+(?:do|can|to|long|much)|where\s+(?:do|can|is|are)"
    r"|need|want|would like|refund|charged|locked|blocked|slow|late|delay\w*|timeout|timed out)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quote:
    """A verbatim quote: ``text == message_text[start:end]``."""

    message_id: int
    conversation_id: int
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Sentence:
    """A candidate quote: one whole customer sentence with its place in the message."""

    conversation_id: int
    message_id: int
    start: int
    end: int
    text: str
    first_message: bool  # in the conversation's opening customer message


@dataclass
class EvidenceSelection:
    """Chosen quotes, best first, and plain-language notes on what limited them."""

    quotes: list[Quote]
    notes: list[str] = field(default_factory=list)
    thin: bool = False  # fewer than `pipeline.min_evidence_quotes` quotes qualified
    repetitive: bool = False  # candidates said the same thing (e.g. a form template's first line)


def is_small_talk(text: str) -> bool:
    """Greetings, thanks, praise, apologies and sign-offs: never evidence for a problem.

    A sentence that opens with small talk or praises, and names no problem, is small talk;
    "Thanks, but the export still fails" is not.
    """
    words = _WORD.findall(text)
    if len(words) < MIN_QUOTE_WORDS:
        return True
    if _PRAISE.search(text) and not _PROBLEM.search(text):
        return True
    return bool(_SMALL_TALK_START.match(text)) and not _PROBLEM.search(text)


def _trim(text: str, start: int, end: int, max_chars: int) -> tuple[int, int]:
    """Shorten [start, end) to at most `max_chars`, cutting at whitespace (never inside a word)."""
    if end - start <= max_chars:
        return start, end
    cut = text.rfind(" ", start, start + max_chars + 1)
    end = cut if cut > start else start + max_chars
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def candidate_sentences(
    conversation_id: int, messages: Sequence[tuple[int, str]], *, max_chars: int | None = None
) -> list[Sentence]:
    """Whole sentences of a conversation's customer messages that could be evidence (small talk left out).

    ``messages`` are (message id, text) in conversation order; offsets index those texts. A
    sentence longer than `max_chars` (default: the ``pipeline.max_quote_chars`` setting) is
    cut at a word boundary.
    """
    max_chars = max_chars or get_settings().pipeline.max_quote_chars
    out: list[Sentence] = []
    for index, (message_id, body) in enumerate(messages):
        for start, end in sentence_spans(body):
            if len(out) >= MAX_SENTENCES_PER_CONVERSATION:
                return out
            if body[start] == ">":  # a quoted reply line that normalisation left in
                continue
            start, end = _trim(body, start, end, max_chars)
            text = body[start:end]
            if is_small_talk(text):
                continue
            out.append(Sentence(conversation_id, message_id, start, end, text, index == 0))
    return out


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    rows = np.asarray(matrix, dtype=np.float64)
    unit: np.ndarray = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return unit


def _typical_first(pairwise: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`items` ordered by how many of the others count them among their nearest ``CORE_NEIGHBOUR_SHARE``.

    Ties: the higher mean cosine to the item's own nearest, then the given order.
    """
    sub = pairwise[np.ix_(items, items)]
    k = max(1, math.ceil(CORE_NEIGHBOUR_SHARE * (len(items) - 1)))
    nearest = np.argpartition(-sub, k - 1, axis=1)[:, :k]  # each row's k nearest, in any order
    named = np.bincount(nearest.ravel(), minlength=len(items))
    closeness = np.take_along_axis(sub, nearest, axis=1).mean(axis=1)
    order = np.lexsort((np.arange(len(items)), -closeness, -named))
    ordered: np.ndarray = items[order]
    return ordered


def _peel(pairwise: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`items`, most typical first: the less typical half is set aside, the rest ranked again among themselves.

    Ranking the kept half again without the half set aside sharpens the order where two groups
    meet: a minority that survived the first cut is a smaller share of what is left, so it
    drops lower each round. About log2(n) rounds.
    """
    tail: list[np.ndarray] = []
    while len(items) > 1:
        ranked = _typical_first(pairwise, items)
        keep = math.ceil(len(ranked) / 2)
        tail.append(ranked[keep:])
        items = ranked[:keep]
    ordered: np.ndarray = np.concatenate([items, *reversed(tail)])
    return ordered


def core_conversations(
    conversation_ids: Sequence[int],
    vectors: np.ndarray,
    centroids: np.ndarray,
    theme_row: int,
    *,
    limit: int,
) -> list[int]:
    """Up to ``limit`` of a theme's conversations to quote from: its core, the most typical first.

    ``conversation_ids`` are members of the theme (up to ``CORE_POOL_CONVERSATIONS`` of them,
    closest to its centre first), ``vectors`` their embeddings (same row order),
    ``centroids`` the L2-normalised centroids of every theme of the run and ``theme_row``
    this theme's row.

    Typicality: each member names its nearest ``CORE_NEIGHBOUR_SHARE`` of the other members;
    a member named by many is typical (ties: the higher mean cosine to its own nearest). This
    counts *how many* members resemble a conversation rather than how close its few
    look-alikes are, so a theme's majority group ranks above a smaller, tighter group (a form
    template repeated word for word) and a stray member ranks last. The core is the most
    typical ``CORE_SHARE`` of the members, keeping only those whose cosine to their own
    centroid beats their cosine to every other theme's by ``MIN_CORE_MARGIN``.
    """
    n = len(conversation_ids)
    if n == 0:
        return []
    unit = _unit_rows(vectors)
    sims = unit @ np.asarray(centroids, dtype=np.float64).T
    own = sims[:, theme_row]
    others = np.delete(sims, theme_row, axis=1)
    runner_up = others.max(axis=1) if others.shape[1] else np.full(n, -1.0)
    clear = own - runner_up >= MIN_CORE_MARGIN
    if n == 1:
        return [int(conversation_ids[0])] if clear[0] else []
    pairwise = unit @ unit.T
    np.fill_diagonal(pairwise, -np.inf)  # a member is not its own neighbour
    ordered = _peel(pairwise, np.arange(n))
    core = [int(i) for i in ordered[: math.ceil(CORE_SHARE * n)] if clear[i]]
    return [int(conversation_ids[i]) for i in core[:limit]]


def select_evidence(
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    centroids: np.ndarray,
    theme_row: int,
    *,
    contacts: Mapping[int, int | None] | None = None,
    core: Sequence[int] | None = None,
    limit: int | None = None,
    min_quotes: int | None = None,
) -> EvidenceSelection:
    """Up to ``limit`` on-topic quotes from distinct conversations, varied, new customers first.

    ``core`` lists the theme's core conversations, most typical first
    (:func:`core_conversations`): when given, only their sentences are quoted, in that order
    (each conversation by its best sentence) until ``limit`` are chosen; without it, the best
    sentences are chosen. Either way the chosen quotes are returned best sentence first.

    ``sentences`` are the theme's candidates, ``vectors`` their L2-normalised embeddings
    (same row order), ``centroids`` the L2-normalised centroids of *every* theme of the
    run and ``theme_row`` this theme's row in it. ``contacts`` maps conversation id ->
    customer id (None when unknown). ``limit`` and ``min_quotes`` default to the settings
    ``pipeline.evidence_quotes_per_story`` and ``pipeline.min_evidence_quotes``; fewer than
    ``min_quotes`` makes the selection thin (it says so in its notes).
    """
    pipeline = get_settings().pipeline
    limit = limit or pipeline.evidence_quotes_per_story
    min_quotes = min_quotes or pipeline.min_evidence_quotes
    contacts = contacts or {}
    if not sentences:
        return EvidenceSelection([], ["no customer sentence long enough to quote"], thin=True)
    sims = np.asarray(vectors, dtype=np.float64) @ np.asarray(centroids, dtype=np.float64).T
    own = sims[:, theme_row]
    others = np.delete(sims, theme_row, axis=1)
    closest_other = others.max(axis=1) if others.shape[1] else np.full(len(sentences), -1.0)
    on_topic = (own > closest_other) & (own >= MIN_QUOTE_SIMILARITY)
    score = own - np.maximum(closest_other, 0.0) + FIRST_MESSAGE_BONUS * np.array([s.first_message for s in sentences])
    place = {cid: rank for rank, cid in enumerate(core)} if core is not None else None
    best: dict[int, int] = {}  # conversation -> index of its best on-topic sentence
    for i in (int(k) for k in np.flatnonzero(on_topic)):
        cid = sentences[i].conversation_id
        if place is not None and cid not in place:
            continue
        if cid not in best or score[i] > score[best[cid]]:
            best[cid] = i
    ranked = sorted(
        best.values(),
        key=lambda i: (
            place[sentences[i].conversation_id] if place is not None else 0,
            -score[i],
            sentences[i].conversation_id,
            sentences[i].start,
        ),
    )
    chosen: list[int] = []
    duplicates = 0
    seen_contacts: set[int] = set()
    for prefer_new_customer in (True, False):
        for i in ranked:
            if len(chosen) >= limit:
                break
            if i in chosen:
                continue
            contact = contacts.get(sentences[i].conversation_id)
            if prefer_new_customer and contact is not None and contact in seen_contacts:
                continue
            same = any(
                sentences[j].text.casefold() == sentences[i].text.casefold()
                or float(vectors[i] @ vectors[j]) > DUPLICATE_SIMILARITY
                for j in chosen
            )
            if same:
                duplicates += prefer_new_customer  # counted once, in the first pass
                continue
            chosen.append(i)
            if contact is not None:
                seen_contacts.add(contact)
    # Shown best sentence first (the title is written from the first quotes): the core chose *which*
    # conversations are quoted, the sentences' own scores say which quote states the problem best.
    chosen.sort(key=lambda i: (-score[i], sentences[i].conversation_id, sentences[i].start))
    quotes = [
        Quote(s.message_id, s.conversation_id, s.start, s.end, s.text, round(float(score[i]), 4))
        for i, s in ((i, sentences[i]) for i in chosen)
    ]
    selection = EvidenceSelection(quotes)
    if duplicates and len(quotes) < limit:
        selection.repetitive = True
        selection.notes.append(
            f"{duplicates} more conversations say the same as a quote shown (identical or near-identical wording)"
        )
    if len(quotes) < min_quotes:
        selection.thin = True
        selection.notes.append(
            f"only {len(quotes)} distinct on-topic quote{'s' if len(quotes) != 1 else ''} found"
            f" among {len({s.conversation_id for s in sentences})} conversations"
        )
    return selection

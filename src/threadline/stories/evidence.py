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
3. **On topic**: a sentence's embedding must be closer to its own theme's centroid than to
   any other theme of the run, and at least ``MIN_QUOTE_SIMILARITY`` to its own.
4. **Variety**: one quote per conversation, new customers first, and no quote that says
   the same as one already chosen (same text, or cosine above ``DUPLICATE_SIMILARITY``).

When fewer than ``pipeline.min_evidence_quotes`` quotes qualify, the selection still returns what
there is and says why in its ``notes`` (thin or repetitive evidence), so no theme loses its
story silently.
"""

from __future__ import annotations

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
    "is_small_talk",
    "select_evidence",
]

EVIDENCE_VERSION = "sentences-on-topic-1"
MIN_QUOTE_WORDS = 4  # words: "hi there" or "any update?" says nothing about the problem
MAX_SENTENCES_PER_CONVERSATION = 12  # customer sentences considered per conversation: the problem is stated early
MIN_QUOTE_SIMILARITY = 0.25  # cosine of a sentence to its theme's centroid: below, it is about something else
FIRST_MESSAGE_BONUS = 0.05  # cosine points: the opening message states the problem; follow-ups add details
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


def select_evidence(
    sentences: Sequence[Sentence],
    vectors: np.ndarray,
    centroids: np.ndarray,
    theme_row: int,
    *,
    contacts: Mapping[int, int | None] | None = None,
    limit: int | None = None,
    min_quotes: int | None = None,
) -> EvidenceSelection:
    """Up to ``limit`` on-topic quotes from distinct conversations, varied, new customers first.

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
    best: dict[int, int] = {}  # conversation -> index of its best on-topic sentence
    for i in (int(k) for k in np.flatnonzero(on_topic)):
        cid = sentences[i].conversation_id
        if cid not in best or score[i] > score[best[cid]]:
            best[cid] = i
    ranked = sorted(best.values(), key=lambda i: (-score[i], sentences[i].conversation_id, sentences[i].start))
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

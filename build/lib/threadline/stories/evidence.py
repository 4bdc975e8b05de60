"""Verbatim evidence: quotes that are exact substrings of customer messages, with offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass

from threadline.config import get_settings

MIN_QUOTE_WORDS = 4  # words: "hi there" or "thanks" says nothing about the problem
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.M)
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class Quote:
    message_id: int
    conversation_id: int
    start: int
    end: int
    text: str
    score: float


def _spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def _trim(text: str, start: int, end: int, max_chars: int) -> tuple[int, int]:
    """Shorten [start, end) to at most `max_chars`, cutting at a word boundary."""
    if end - start <= max_chars:
        return start, end
    cut = text.rfind(" ", start, start + max_chars)
    end = cut if cut > start else start + max_chars
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def best_quote(
    message_id: int, conversation_id: int, text: str, keywords: list[str], *, max_chars: int | None = None
) -> Quote | None:
    """The sentence of `text` that says most about `keywords` (with the next one if it is short).

    Returns None when no sentence has `MIN_QUOTE_WORDS` words. The quote is at most
    `max_chars` long (default: the `pipeline.max_quote_chars` setting). The result always
    satisfies ``text[quote.start:quote.end] == quote.text``.
    """
    words = [set(k.lower().split()) for k in keywords]
    best: tuple[float, int, int] | None = None
    spans = _spans(text)
    for index, (start, end) in enumerate(spans):
        if len(_WORD.findall(text[start:end])) < MIN_QUOTE_WORDS:
            continue  # greetings, sign-offs, "Any update?"
        tokens = {w.lower() for w in _WORD.findall(text[start:end])}
        hits = sum(len(kw & tokens) / len(kw) for kw in words if kw)
        score = hits - index * 0.01  # earlier sentences win ties: customers state the problem first
        if best is None or score > best[0]:
            best = (score, start, end)
    if best is None:
        return None
    score, start, end = best
    start, end = _trim(text, start, end, max_chars or get_settings().pipeline.max_quote_chars)
    return Quote(message_id, conversation_id, start, end, text[start:end], score)

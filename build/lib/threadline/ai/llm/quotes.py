"""Verbatim quote verification: a quote survives only if it is really in the messages.

"Verbatim" means an exact, case-sensitive substring after whitespace normalisation
(runs of spaces, tabs and newlines collapse to one space) and nothing else: no fuzzy
matching, no case folding, no punctuation repair. A quote attributed to the wrong
message of the same conversation is re-attributed to the message that contains it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from threadline.config import get_settings

MIN_QUOTE_CHARS = 8  # characters: shorter "quotes" ("yes", "ok") are no evidence; what a quote is, not a setting


@dataclass(frozen=True)
class QuoteCandidate:
    """What the model claimed: a quote and the message it came from."""

    message_id: str
    text: str


@dataclass(frozen=True)
class VerifiedQuote:
    """A quote found verbatim in `message_id` (text whitespace-normalised)."""

    message_id: str
    text: str


@dataclass(frozen=True)
class QuoteCheck:
    """Kept quotes and how many candidates were dropped (and why, by count)."""

    kept: tuple[VerifiedQuote, ...]
    dropped_not_found: int
    dropped_too_short: int
    dropped_duplicate_or_excess: int

    @property
    def dropped(self) -> int:
        """All candidates that did not survive."""
        return self.dropped_not_found + self.dropped_too_short + self.dropped_duplicate_or_excess


def normalize_whitespace(text: str) -> str:
    """Collapse every whitespace run to one space and trim the ends."""
    return " ".join(text.split())


def verify_quotes(
    candidates: Iterable[QuoteCandidate], messages: Sequence[tuple[str, str]], *, max_kept: int | None = None
) -> QuoteCheck:
    """Keep candidates found verbatim in `messages` ((message_id, text) pairs), in order.

    At most `max_kept` are kept (default: the `llm.quotes_per_conversation` setting).
    """
    max_kept = max_kept or get_settings().llm.quotes_per_conversation
    normalised = [(mid, normalize_whitespace(text)) for mid, text in messages]
    by_id = dict(normalised)
    kept: list[VerifiedQuote] = []
    not_found = too_short = excess = 0
    for candidate in candidates:
        quote = normalize_whitespace(candidate.text)
        if len(quote) < MIN_QUOTE_CHARS:
            too_short += 1
            continue
        home = candidate.message_id if quote in by_id.get(candidate.message_id, "") else None
        if home is None:
            home = next((mid for mid, text in normalised if quote in text), None)
        if home is None:
            not_found += 1
            continue
        verified = VerifiedQuote(message_id=home, text=quote)
        if verified in kept or len(kept) >= max_kept:
            excess += 1
            continue
        kept.append(verified)
    return QuoteCheck(tuple(kept), not_found, too_short, excess)

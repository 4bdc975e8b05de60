"""Verbatim quote verification: a quote survives only if it is really in the messages.

"Verbatim" means an exact, case-sensitive substring after whitespace normalisation
(runs of spaces, tabs and newlines collapse to one space) and nothing else: no fuzzy
matching, no case folding, no punctuation repair. A quote attributed to the wrong
message of the same conversation is re-attributed to the message that contains it.

Quotations inside model-written text (a summary, a story's problem) are held to the same
rule: every span in double quotation marks of at least four words must be an exact substring
of the text the model was given, or the text is rejected (`quotation_problem`).
"""

from __future__ import annotations

import re
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


# A quotation in model-written text: a span in double quotation marks, straight or typographic
# (English, German and French styles). Single quotes are not quotation marks here: an apostrophe
# ("don't", "customer’s") cannot be told from a closing single quote.
MIN_QUOTATION_WORDS = 4  # words: shorter spans ("Export", "the new plan") name things rather than quote someone
MAX_QUOTATION_CHARS = 2_000  # characters between the marks: bounds the scan from an unclosed mark (linear time)
QUOTATION = re.compile(
    rf'"([^"]{{1,{MAX_QUOTATION_CHARS}}})"'
    rf"|\u201c([^\u201c\u201d]{{1,{MAX_QUOTATION_CHARS}}})\u201d"
    rf"|\u201e([^\u201c\u201d\u201e]{{1,{MAX_QUOTATION_CHARS}}})[\u201c\u201d]"
    rf"|\u00ab([^\u00ab\u00bb]{{1,{MAX_QUOTATION_CHARS}}})\u00bb"
)


def quotations(text: str) -> list[str]:
    """The quotations of at least `MIN_QUOTATION_WORDS` words in `text`, whitespace-normalised."""
    found = []
    for match in QUOTATION.finditer(text):
        span = normalize_whitespace(next(group for group in match.groups() if group is not None))
        if len(span.split()) >= MIN_QUOTATION_WORDS:
            found.append(span)
    return found


def unverified_quotations(texts: Iterable[str], sources: Iterable[str]) -> int:
    """How many quotations in `texts` are not an exact substring of any of `sources` (after whitespace normalisation).

    `sources` are the texts as the model saw them (masked), so a faithful quotation of a
    masked message shows the same ``[email]`` the model was given.
    """
    normalised = [normalize_whitespace(s) for s in sources]
    return sum(1 for text in texts for span in quotations(text) if not any(span in s for s in normalised))


def quotation_problem(texts: Iterable[str], sources: Iterable[str]) -> str | None:
    """A repair instruction when model-written text quotes words that are not in its sources, else None.

    The instruction carries no untrusted text: it names the rule, not the quotation.
    """
    missing = unverified_quotations(texts, sources)
    if not missing:
        return None
    return (
        f"{missing} quotation(s) in quotation marks are not exact text from the data; "
        "quote only exact text from the data, or do not use quotation marks"
    )

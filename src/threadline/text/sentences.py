"""Sentence spans for evidence quotes, and word-boundary truncation for display.

Threadline quotes customers verbatim: a quote is one or more whole sentences of the message,
an exact substring with offsets into the original text. So segmentation here must

* never split inside a token: dotted names (``task.updated``), e-mail addresses, URLs,
  decimals and amounts (``2.5``, ``$1,299.99``), version numbers (``4.13.2``), abbreviations
  (``e.g.``, ``i.e.``, ``Mr.``, ``etc. and``) or ellipses;
* never glue separate lines: a line break always ends a sentence ("since last week" /
  "Please fix asap" are two), because support messages are full of greetings, list items and
  lines without final punctuation;
* return offsets, not strings, so callers can store and highlight them.

It is a small rule-based splitter (one regular-expression pass per line plus a bounded look at
the word before each candidate stop), chosen over pysbd, syntok, blingfire, nupunkt and a plain
regex after measuring all of them on the cases in ``tests/text/data/sentence_cases.json``.
Running time is linear in the input.
"""

from __future__ import annotations

import logging
import re
from typing import Final

logger = logging.getLogger(__name__)

__all__ = ["SENTENCES_VERSION", "sentence_spans", "sentences", "truncate_words", "ELLIPSIS"]

SENTENCES_VERSION: Final = "1"  # bump when spans can change: stored quote offsets depend on them

ELLIPSIS: Final = "…"  # one character, so truncation wastes no width on "..."

# A line: maximal run without a line break (\n, \r, vertical tab, form feed, NEL, LS, PS).
_LINE: Final = re.compile(r"[^\n\r\x0b\x0c\x85\u2028\u2029]++")
# List markers and quote marks at the start of a line are not part of the sentence:
# "- item", "* item", "• item", "> quoted", "1. step", "2) step", "a) option".
_LINE_PREFIX: Final = re.compile(r"\s*+(?:(?:[-*•·▪‣◦–—>]|\d{1,2}[.)]|[a-z]\))\s++)?+")
# A candidate stop: terminal punctuation, then closing quotes/brackets, then whitespace; or an
# emoticon ("I love it :) But ...") that a capital follows.
# The look-behind lets a match start only at the first mark of a run: without it a long run of
# "?" that is not followed by whitespace would be rescanned from every position (quadratic).
_STOP: Final = re.compile(r"(?<![.!?…‽。！？])[.!?…‽。！？]++[\"'”’)\]»]*+(?=\s)|(?<!\S)[:;]-?[)(DP](?=\s++[A-Z])")
_NEXT_NON_SPACE: Final = re.compile(r"\s++")
# characters: how far back to look for the word before a full stop; abbreviations are short,
# and the bound keeps the work per stop constant (linear overall).
_LOOKBACK_CHARS: Final = 40
# Characters that open a word without being part of it: "(e.g." -> "e.g".
_WORD_OPENERS: Final = frozenset("([\"'“‘")

# Abbreviations that do not end a sentence even before a capital ("Mr. Smith", "e.g. Slack").
# Lower-case, without the final dot. Ambiguous ones that often end sentences ("etc.", "Inc.",
# "Ltd.") are deliberately absent: they end one when the next word is capitalised.
_NON_TERMINAL_ABBREVIATIONS: Final = frozenset(
    """
    mr mrs ms mx dr prof rev hon sr jr st mt gen capt lt col sgt rep sen gov pres messrs mme mlle
    e.g i.e eg ie cf vs viz approx appx ca incl esp resp dept est fig figs vol pp ch sec art
    """.split()
)
# Abbreviations that do not end a sentence before a number ("No. 5", "p. 12").
_BEFORE_NUMBER_ABBREVIATIONS: Final = frozenset("no nr nos p pp vol ch sec art fig figs op tel ph".split())
# "a.m." / "p.m." before a time zone ("10 p.m. UTC") do not end a sentence.
_TIME_ABBREVIATIONS: Final = frozenset({"a.m", "p.m"})
_TIME_ZONE: Final = re.compile(r"(?:UTC|GMT|[A-Z]{1,2}[SD]?T|CES?T|EES?T|WES?T|BST|IST|JST|AES?T)\b")
# A word that starts lower-case but is a sentence start anyway (iPhone, iOS, eBay).
_CAMEL_START: Final = re.compile(r"[ie][A-Z]")


def _word_before(text: str, end: int) -> str:
    """The word that ends at `end` (without opening brackets/quotes); "" if longer than the bound."""
    start = end
    limit = max(0, end - _LOOKBACK_CHARS)
    while start > limit and not text[start - 1].isspace() and text[start - 1] not in _WORD_OPENERS:
        start -= 1
    if start == limit and limit > 0 and not text[start - 1].isspace() and text[start - 1] not in _WORD_OPENERS:
        return ""  # longer than any abbreviation
    return text[start:end]


def _is_boundary(text: str, stop_start: int, stop_end: int, line_end: int) -> bool:
    """Whether the stop ``text[stop_start:stop_end]`` (followed by whitespace) ends a sentence."""
    gap = _NEXT_NON_SPACE.match(text, stop_end, line_end)
    next_start = gap.end() if gap else stop_end
    if next_start >= line_end:
        return True  # only whitespace follows on this line
    nxt = text[next_start]
    if nxt.islower() and not _CAMEL_START.match(text, next_start):
        return False  # "e.g. the", "etc. and", "... nothing happened"
    punctuation = text[stop_start:stop_end]
    if "." not in punctuation or any(ch in punctuation for ch in "!?…‽！？。") or ".." in punctuation:
        return True  # "!", "?", "?!", an ellipsis before a capital
    word = _word_before(text, stop_start).lower()
    if word in _NON_TERMINAL_ABBREVIATIONS:
        return False
    if word in _TIME_ABBREVIATIONS and _TIME_ZONE.match(text, next_start):
        return False  # "10 p.m. UTC every night"
    if nxt.isdigit() and word in _BEFORE_NUMBER_ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha() and nxt.isupper():
        return False  # an initial: "J. R. Smith"
    return True


def _has_word_character(text: str, start: int, end: int) -> bool:
    return any(ch.isalnum() for ch in text[start:end])


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences of `text` as ``(start, end)`` offsets, start inclusive and end exclusive.

    Spans are in order, do not overlap, exclude surrounding whitespace and leading list markers
    ("- ", "1. ", "> "), and are exact substrings of `text`. A line break always ends a
    sentence. Spans with no letter or digit (a "--" line, a lone emoji) are left out.
    """
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        line_start, line_end = line.span()
        prefix = _LINE_PREFIX.match(text, line_start, line_end)
        start = prefix.end() if prefix else line_start
        for stop in _STOP.finditer(text, start, line_end):
            if stop.end() <= start:
                continue
            if _is_boundary(text, stop.start(), stop.end(), line_end):
                if _has_word_character(text, start, stop.end()):
                    spans.append((start, stop.end()))
                gap = _NEXT_NON_SPACE.match(text, stop.end(), line_end)
                start = gap.end() if gap else stop.end()
        end = line_end
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and _has_word_character(text, start, end):
            spans.append((start, end))
    return spans


def sentences(text: str) -> list[str]:
    """The sentence strings of `text` (see :func:`sentence_spans`)."""
    return [text[start:end] for start, end in sentence_spans(text)]


# Punctuation that reads badly right before an ellipsis ("foo, …").
_DANGLING: Final = " \t\n,;:-–—([{/\"'“‘"


def truncate_words(text: str, max_chars: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` shortened to at most `max_chars` characters at a word boundary, plus `ellipsis`.

    Text that already fits is returned unchanged. Otherwise the cut is made at the last
    whitespace that leaves room for the ellipsis, trailing separators (", (" ...) are dropped,
    and the ellipsis appended. A single word longer than the budget is cut inside the word,
    since there is no boundary to use. For display only: never store the result as a quote.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if len(text) <= max_chars:
        return text
    if len(ellipsis) >= max_chars:
        return ellipsis[:max_chars]
    budget = max_chars - len(ellipsis)
    cut = budget
    # the character at `budget` is the first one dropped: if it is whitespace, cut there
    if not text[budget].isspace():
        space = max((text.rfind(ch, 0, budget) for ch in (" ", "\n", "\t", "\u00a0")), default=-1)
        if space > 0:
            cut = space
    head = text[:cut].rstrip(_DANGLING)
    if not head:
        head = text[:budget].rstrip()
    return head + ellipsis

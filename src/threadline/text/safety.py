"""Making customer text safe to show and to export: links, invisible direction controls, formula cells.

Everything here is pure and linear in its input. Conversations are written by strangers, so
what Threadline renders from them must never execute (a `javascript:` link), reorder what a
reader sees (bidi overrides: "Trojan Source"), hide text (zero-width characters) or run as a
spreadsheet formula when a report is opened.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

LINK_SCHEMES = frozenset({"http", "https"})  # the only URL schemes that become links
MAX_URL_CHARS = 2048  # characters: longer "URLs" are not links a person follows; browsers cap near there too

# Bidi embeddings/overrides (U+202A-202E), isolates (U+2066-2069), zero-width and direction marks
# (U+200B-200F) and the zero-width no-break space / byte-order mark (U+FEFF).
INVISIBLE_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200b-\u200f\ufeff]")
# ASCII control characters other than tab, newline and carriage return: never meaningful in a URL.
_URL_CONTROLS = re.compile("[\x00-\x20\x7f]")

# What PostgreSQL text cannot hold (NUL) and what is not valid Unicode (a lone surrogate).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection");
# tab and carriage return are included because some spreadsheets strip them and read what follows.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_link(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) URL with a host, else None (so it is shown as text, never as a link).

    Browsers strip leading/trailing whitespace and control characters from `href` values and
    ignore tabs and newlines inside the scheme (`java\\tscript:`), so any control character or
    space makes the value refused rather than guessed at.
    """
    if not url or len(url) > MAX_URL_CHARS or _URL_CONTROLS.search(url) or INVISIBLE_CONTROLS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.netloc or "\\" in url:
        return None
    return url


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored or searched (a NUL or a lone surrogate), or None when it can."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return f"contains a lone surrogate (U+{ord(match.group()):04X})"


def mark_invisible(text: str) -> str:
    """`text` with each bidi control or zero-width character replaced by a visible marker like `<U+202E>`.

    A reader then sees that the text contains them, and they cannot reorder or hide what
    follows. Used for display and exports; the stored text keeps them (it is evidence).
    """
    return INVISIBLE_CONTROLS.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def csv_cell(value: object) -> object:
    """A value for a CSV cell that a spreadsheet will not evaluate: text starting like a formula gets a quote prefix."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


# What can start HTML, an entity, a link or an image in Markdown: `<` `>` `&` `[` `]` (and the backslash itself).
_MARKDOWN_SPECIAL = re.compile(r"([\\<>\[\]&])")


def markdown_text(text: str) -> str:
    """`text` escaped for Markdown: no raw HTML, entities, links or images; invisible controls marked.

    CommonMark allows a backslash before any ASCII punctuation; only the characters that
    can open HTML, an entity, a link or an image are escaped, so ordinary prose stays readable.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", mark_invisible(text))

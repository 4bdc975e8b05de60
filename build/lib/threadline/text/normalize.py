"""Message normalization: HTML to text, quoted replies and e-mail signatures removed.

The raw text is always kept next to the result (``messages.raw_text``); evidence quotes
are taken from the normalized text, so they read as the customer wrote them without
markup or the thread they replied to.
"""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

NORMALIZE_VERSION = "1"  # bump when output can change: it is part of every downstream input hash

_HTML_HINT = re.compile(
    r"<\s*(p|br|div|span|a|b|i|em|strong|ul|ol|li|table|tr|td|blockquote|html|body|h[1-6])\b[^>]*>", re.I
)
_BLOCK_TAGS = ("p", "div", "br", "li", "tr", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table")

# A reply header such as "On Mon, 3 Nov 2026 at 10:02, Support <help@x.io> wrote:" (may wrap).
_REPLY_HEADER = re.compile(r"^\s*On\b.{0,200}?\bwrote:\s*$", re.I | re.M | re.S)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*(-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Forwarded message\s*-{2,}|From:\s.+\n\s*(Sent|Date):\s)",
    re.I | re.M,
)
_SIGNATURE_DELIMITER = re.compile(r"^(--|__+|—)\s*$", re.M)
_MOBILE_SIGNATURE = re.compile(r"^\s*Sent from my (iPhone|iPad|Android|mobile device|Galaxy).*$", re.I | re.M)
_SIGN_OFF = re.compile(
    r"\n\s*(best regards|kind regards|regards|best|thanks|thank you|cheers|sincerely|many thanks)[,.!]?\s*\n"
    r"(?P<tail>(?:[^\n]{1,80}\n?){1,4})\s*$",
    re.I,
)
_WHITESPACE = re.compile(r"[ \t\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def looks_like_html(text: str) -> bool:
    """True when `text` contains real markup (not just a stray '<')."""
    return bool(_HTML_HINT.search(text)) or "&nbsp;" in text or "&amp;" in text


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment, one line per block element; links keep their text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "head"]):
        tag.decompose()
    for quote in soup.find_all("blockquote"):
        quote.decompose()  # quoted earlier messages in HTML mail
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return soup.get_text()


def strip_quoted_reply(text: str) -> str:
    """Cut the text at the first quoted-reply header and drop '>'-quoted lines."""
    for pattern in (_REPLY_HEADER, _ORIGINAL_MESSAGE):
        match = pattern.search(text)
        if match and match.start() > 0:
            text = text[: match.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(lines)


def strip_signature(text: str) -> str:
    """Remove a trailing e-mail signature: after a '-- ' delimiter, mobile footers, sign-off blocks."""
    match = _SIGNATURE_DELIMITER.search(text)
    if match and match.start() > 0:
        text = text[: match.start()]
    text = _MOBILE_SIGNATURE.sub("", text)
    sign_off = _SIGN_OFF.search(text + "\n")
    if sign_off and sign_off.start() > 0:
        text = text[: sign_off.start()]
    return text


def clean_whitespace(text: str) -> str:
    """Collapse runs of spaces, trim lines, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WHITESPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def normalize_message(raw: str) -> str:
    """The readable text of one message. Never returns an empty string for non-empty input
    that has visible text: when stripping would remove everything, the cleaned raw text is kept."""
    text = html_to_text(raw) if looks_like_html(raw) else raw
    text = clean_whitespace(text)
    stripped = clean_whitespace(strip_signature(strip_quoted_reply(text)))
    return stripped or text

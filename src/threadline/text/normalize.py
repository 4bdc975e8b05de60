"""Message normalization: HTML to text, quoted replies and e-mail signatures removed.

The raw text is always kept next to the result (``messages.raw_text``); evidence quotes
are taken from the normalized text, so they read as the customer wrote them without
markup or the thread they replied to.

Everything here runs in time linear in the input, whatever the input (customer text,
Intercom bodies): HTML is walked once with an explicit stack, each regular expression is
written so it cannot backtrack over a run it already scanned (bounded windows, possessive
quantifiers, no whitespace class spanning lines), and the sign-off block is found by looking
at the last lines instead of by a pattern.
"""

from __future__ import annotations

import re

from lxml import etree

NORMALIZE_VERSION = "1"  # bump when output can change: it is part of every downstream input hash

# An HTML tag we know, opened somewhere before a '>' (the '>' is looked for separately, so a
# text full of '<p' without '>' costs one scan, not one per '<').
_HTML_TAG_START = re.compile(
    r"<\s*+(?:p|br|div|span|a|b|i|em|strong|ul|ol|li|table|tr|td|blockquote|html|body|h[1-6])\b", re.I
)
_BLOCK_TAGS = frozenset(
    ("p", "div", "br", "li", "tr", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table")
)
_DROPPED_TAGS = frozenset(("script", "style", "head", "blockquote"))  # blockquote: quoted earlier messages

# A reply header such as "On Mon, 3 Nov 2026 at 10:02, Support <help@x.io> wrote:" (may wrap).
# `[^\S\n]` is whitespace within a line: a run of blank lines is never rescanned from each line start.
_REPLY_HEADER = re.compile(r"^[^\S\n]*+On\b.{0,200}?\bwrote:[^\S\n]*+$", re.I | re.M | re.S)
_ORIGINAL_MESSAGE = re.compile(
    r"^[^\S\n]*+(?:-{2,}+\s*+Original Message\s*+-{2,}|-{2,}+\s*+Forwarded message\s*+-{2,}"
    r"|From:\s[^\n]++\n\s*+(?:Sent|Date):\s)",
    re.I | re.M,
)
_SIGNATURE_DELIMITER = re.compile(r"^(?:--|__++|\u2014)[^\S\n]*+$", re.M)
_MOBILE_SIGNATURE = re.compile(
    r"^[^\S\n]*+Sent from my (?:iPhone|iPad|Android|mobile device|Galaxy)[^\n]*+$", re.I | re.M
)
_SIGN_OFF_LINE = re.compile(
    r"(?:best regards|kind regards|regards|best|thanks|thank you|cheers|sincerely|many thanks)[,.!]?", re.I
)
SIGN_OFF_MAX_TAIL_CHUNKS = 4  # a signature after a sign-off: at most four chunks of SIGN_OFF_CHUNK_CHARS
SIGN_OFF_CHUNK_CHARS = 80  # characters per chunk (a name, a title, a company line)
_SIGN_OFF_MAX_LINE_CHARS = 40  # a sign-off line is one or two words and a mark; longer lines are not one
_WHITESPACE = re.compile(r"[ \t\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def looks_like_html(text: str) -> bool:
    """True when `text` contains real markup (not just a stray '<')."""
    match = _HTML_TAG_START.search(text)
    if match and text.find(">", match.end()) != -1:
        return True
    return "&nbsp;" in text or "&amp;" in text


class _VisibleText:
    """lxml parser target that collects the visible text of an HTML document from its events.

    It reproduces what the previous BeautifulSoup version produced from the same libxml2 event
    stream (so normalized text, and every hash built on it, is unchanged): a newline before and
    after each block element; script, style, head and blockquote dropped with everything in
    them; text inside template/rt/rp (BeautifulSoup's special string containers) skipped but
    block breaks kept; a whitespace-only run of text outside pre/textarea becomes one newline
    or one space; an end tag closes the innermost open element of that name and everything
    opened inside it, and one with no such open element is ignored. Each event costs O(1),
    apart from popping elements that were opened once.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending: list[str] = []  # text since the last event
        self.stack: list[str] = []
        self.open: dict[str, int] = {}
        self.dropped = 0  # open elements whose whole content is dropped
        self.containers = 0  # open elements whose text is skipped
        self.preserve = 0  # open pre/textarea

    def _flush(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending = []
        if not self.preserve and not text.strip(_ASCII_SPACES):
            text = "\n" if "\n" in text else " "
        if not self.dropped and not self.containers:
            self.parts.append(text)

    def _count(self, name: str, step: int) -> None:
        self.open[name] = self.open.get(name, 0) + step
        if name in _DROPPED_TAGS:
            self.dropped += step
        if name in _TEXT_CONTAINERS:
            self.containers += step
        if name in _PRESERVE_WHITESPACE:
            self.preserve += step

    def start(self, tag: str, attrib=None, nsmap=None) -> None:
        self._flush()
        self.stack.append(tag)
        self._count(tag, 1)
        if tag in _BLOCK_TAGS and not self.dropped:
            self.parts.append("\n")

    def _pop(self) -> None:
        tag = self.stack.pop()
        if tag in _BLOCK_TAGS and not self.dropped:
            self.parts.append("\n")
        self._count(tag, -1)

    def end(self, tag: str) -> None:
        self._flush()
        if not self.open.get(tag):
            return
        while self.stack:
            name = self.stack[-1]
            self._pop()
            if name == tag:
                break

    def data(self, text: str) -> None:
        self.pending.append(text)

    def comment(self, text: str) -> None:
        self._flush()

    def pi(self, target: str, data: str | None = None) -> None:
        self._flush()

    def doctype(self, *args) -> None:
        self._flush()

    def close(self) -> str:
        self._flush()
        while self.stack:
            self._pop()
        return "".join(self.parts)


_ASCII_SPACES = " \n\t\x0c\r"
_TEXT_CONTAINERS = frozenset(("template", "rt", "rp", "script", "style"))
_PRESERVE_WHITESPACE = frozenset(("pre", "textarea"))
HTML_FEED_CHARS = 512  # characters per parser feed (the chunking BeautifulSoup used; libxml2 is incremental)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment, one line per block element; links keep their text.

    The parser reports events to `_VisibleText`, which builds the text in one pass: linear in
    the input whatever the number of block tags or the nesting depth (no tree is edited).
    """
    html = _UNSTORABLE.sub("\ufffd", html)  # NUL and lone surrogates cannot be fed to libxml2
    target = _VisibleText()
    parser = etree.HTMLParser(target=target, recover=True, no_network=True)
    try:
        for start in range(0, len(html), HTML_FEED_CHARS):
            parser.feed(html[start : start + HTML_FEED_CHARS])
        return parser.close()
    except (etree.Error, ValueError):
        return html


def strip_quoted_reply(text: str) -> str:
    """Cut the text at the first quoted-reply header and drop '>'-quoted lines."""
    for pattern in (_REPLY_HEADER, _ORIGINAL_MESSAGE):
        match = pattern.search(text)
        if match and match.start() > 0 and not text[: match.start()].isspace():
            text = text[: match.start()]
    lines = [line for line in text.split("\n") if not line.lstrip().startswith(">")]
    return "\n".join(lines)


def _is_sign_off(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) <= _SIGN_OFF_MAX_LINE_CHARS and _SIGN_OFF_LINE.fullmatch(stripped) is not None


def _chunks(line: str) -> int:
    return -(-len(line) // SIGN_OFF_CHUNK_CHARS)


def _sign_off_start(text: str) -> int | None:
    """Offset of the line break before a trailing sign-off block ("Thanks,\nJane Doe\nAcme"), or None.

    The block is a line that is only a sign-off word ("Thanks", "Best regards", ...) and an
    optional mark, not the first line, followed, directly or after blank lines, by one to four
    lines without a blank line between them that fill at most SIGN_OFF_MAX_TAIL_CHUNKS chunks
    of SIGN_OFF_CHUNK_CHARS characters. When several lines qualify, the earliest wins. Only the
    last few lines are examined, so the cost is linear (the old single pattern backtracked
    catastrophically over a long line after a sign-off).
    """
    lines = text.split("\n")
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 1:
        return None
    first = last  # lines[first..last]: the trailing block of non-blank lines
    while first > 0 and lines[first - 1].strip():
        first -= 1
    found = None
    # A sign-off line above the blank lines that precede the block, the block being the tail.
    above = first - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 1 and above < first - 1 and _is_sign_off(lines[above]):
        if sum(_chunks(line) for line in lines[first : last + 1]) <= SIGN_OFF_MAX_TAIL_CHUNKS:
            found = above
    if found is None:  # a sign-off line inside the block, the lines after it being the tail
        cost = 0
        for index in range(last - 1, max(first, 1) - 1, -1):
            cost += _chunks(lines[index + 1])
            if cost > SIGN_OFF_MAX_TAIL_CHUNKS:
                break
            if _is_sign_off(lines[index]):
                found = index
    if found is None:
        return None
    start = sum(len(line) + 1 for line in lines[:found]) - 1  # the line break before the sign-off line
    return start if text[:start].strip() else None


def strip_signature(text: str) -> str:
    """Remove a trailing e-mail signature: after a '-- ' delimiter, mobile footers, sign-off blocks."""
    match = _SIGNATURE_DELIMITER.search(text)
    if match and match.start() > 0:
        text = text[: match.start()]
    text = _MOBILE_SIGNATURE.sub("", text)
    start = _sign_off_start(text)
    if start is not None and start > 0:
        text = text[:start]
    return text


def clean_whitespace(text: str) -> str:
    """Collapse runs of spaces, trim lines, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WHITESPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def normalize_message(raw: str) -> str:
    """The readable text of one message. Never returns an empty string for non-empty input
    that has visible text: when stripping would remove everything, the cleaned raw text is kept.
    NUL characters are dropped and lone surrogates replaced: no text column can store them."""
    raw = _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", raw)
    text = html_to_text(raw) if looks_like_html(raw) else raw
    text = clean_whitespace(text)
    stripped = clean_whitespace(strip_signature(strip_quoted_reply(text)))
    return stripped or text

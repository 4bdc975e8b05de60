"""Articles linked in conversations, and whether the customer was still stuck afterwards.

Pure: article references and message texts in, decisions out (the coverage stage loads them).

- An article is *linked* in a message (agent or customer) when the message contains its URL,
  or its title in quotes ("Accept online payments with Stripe"). URLs are compared without
  scheme, ``www.``, query, fragment or trailing slash, and without a document extension on the
  last path segment (``.md``, ``.html``): a folder of ``foo.md`` is published as ``/foo`` or
  ``/foo.html`` by static site generators. A title counts only in quotes, because a title in
  running text is usually just the name of the topic ("two-factor authentication"), not a
  reference to the article.
- After the first link, the customer is *still stuck* when a later customer message neither
  thanks nor closes ("Found it, thanks!", "that worked", "closing this"), or does but also
  says the problem persists ("thanks, but it still fails").
- A *confusing article* is linked in at least `min_conversations` conversations that ended
  stuck, and in at least `min_share` of the conversations linking it.

Every function is linear in the text it reads: one regex scan for URLs, one for quoted spans,
one for each marker set (alternations of literals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LINK_ROLES = frozenset({"customer", "agent"})  # who links an article: bots' canned help-center pointers are not
DOCUMENT_SUFFIXES = (".markdown", ".html", ".htm", ".md")  # dropped from the last path segment of a URL
MAX_TITLE_CHARS = 300  # characters of a quoted span compared with titles: longer quotes are prose, not a title

_URL = re.compile(r"https?://[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
_QUOTED = re.compile(
    r"[\"\u201c\u201d\u2018\u2019']([^\"\u201c\u201d\u2018\u2019'\n]{3,300})[\"\u201c\u201d\u2018\u2019']"
)
_SPACES = re.compile(r"\s+")
_CLOSING = re.compile(
    r"\b(?:thanks|thank you|thx|appreciate|found it|got it|that worked|it worked|works now|working now|solved|"
    r"resolved|sorted|all good|perfect|great|closing|close this)\b",
    re.IGNORECASE,
)
_PERSISTS = re.compile(
    r"\b(?:still|again|doesn't|does not|didn't|did not|can't|cannot|can not|won't|not working|isn't|nothing)\b",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}>'\""


def normalise_url(url: str) -> str | None:
    """A URL as compared: host and path, lower-case host, no ``www.``, no document suffix (None: not a URL)."""
    try:
        parts = urlsplit(url.strip().rstrip(_TRAILING))
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host:
        return None
    host = host.removeprefix("www.")
    path = parts.path.rstrip("/")
    lowered = path.lower()
    for suffix in DOCUMENT_SUFFIXES:
        if lowered.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{host}{path}"


def normalise_title(title: str) -> str:
    """A title as compared: case-folded, whitespace collapsed, outer spaces and final period dropped."""
    return _SPACES.sub(" ", title).strip().rstrip(".").casefold()


def is_closing(text: str) -> bool:
    """The customer thanks or closes and does not say the problem persists."""
    return bool(_CLOSING.search(text)) and not _PERSISTS.search(text)


@dataclass(frozen=True)
class ArticleRef:
    """What identifies an article in a message: its id, title and (optional) URL."""

    article_id: int
    title: str
    url: str | None


class LinkFinder:
    """Finds the articles linked in a message text (by URL or quoted title)."""

    def __init__(self, articles: Iterable[ArticleRef]) -> None:
        self._by_url: dict[str, int] = {}
        self._by_title: dict[str, int] = {}
        for article in sorted(articles, key=lambda a: a.article_id):  # the oldest article wins a shared key
            if article.url:
                key = normalise_url(article.url)
                if key:
                    self._by_url.setdefault(key, article.article_id)
            title = normalise_title(article.title)
            if title:
                self._by_title.setdefault(title, article.article_id)

    def __bool__(self) -> bool:
        return bool(self._by_url or self._by_title)

    def find(self, text: str) -> set[int]:
        """Ids of the articles `text` links to."""
        found: set[int] = set()
        if self._by_url and "://" in text:
            for match in _URL.finditer(text):
                key = normalise_url(match.group(0))
                if key is not None and key in self._by_url:
                    found.add(self._by_url[key])
        if self._by_title:
            for match in _QUOTED.finditer(text):
                title = normalise_title(match.group(1))
                if title in self._by_title:
                    found.add(self._by_title[title])
        return found


@dataclass(frozen=True)
class LinkOutcome:
    """One article linked in one conversation: whether the customer was still stuck afterwards."""

    article_id: int
    stuck: bool


def conversation_links(messages: Sequence[tuple[str, str]], finder: LinkFinder) -> list[LinkOutcome]:
    """For each article linked in the conversation (`messages`: (author role, text) in order), its outcome."""
    first_link: dict[int, int] = {}
    for position, (role, body) in enumerate(messages):
        if role in LINK_ROLES:
            for article_id in finder.find(body):
                first_link.setdefault(article_id, position)
    if not first_link:
        return []
    # For each position: does a later customer message not thank/close? (one pass from the end)
    stuck_after = [False] * (len(messages) + 1)
    for position in range(len(messages) - 1, -1, -1):
        role, body = messages[position]
        stuck_after[position] = stuck_after[position + 1] or (role == "customer" and not is_closing(body))
    return [LinkOutcome(article_id, stuck_after[position + 1]) for article_id, position in sorted(first_link.items())]


@dataclass
class ArticleTally:
    """Conversations that link one article: all of them, the stuck ones (ids in the caller's order), customers."""

    article_id: int
    linked: int = 0
    stuck: list[int] = field(default_factory=list)
    stuck_customers: set[str] = field(default_factory=set)


def confusing_articles(
    tallies: Mapping[int, ArticleTally], *, min_conversations: int, min_share: float
) -> list[ArticleTally]:
    """The confusing articles, by impact: most stuck conversations, then customers, then stuck share."""
    chosen = [
        t
        for t in tallies.values()
        if t.linked and len(t.stuck) >= min_conversations and len(t.stuck) / t.linked >= min_share
    ]
    return sorted(
        chosen, key=lambda t: (-len(t.stuck), -len(t.stuck_customers), -len(t.stuck) / t.linked, t.article_id)
    )

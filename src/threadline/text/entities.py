"""Entities in support text: platforms, plans, error codes, HTTP statuses, integrations, product areas.

Offline and pure: no database, no model, no imports from layers above ``text``. One
:class:`EntityExtractor` is built from an :class:`EntityConfig` (plan names, a gazetteer of product
areas, and the documented platform and integration lists below) and then returns typed entities
with character offsets into the text it was given.

How it works, and why it stays linear in the length of the text:

- the text is split once into word tokens (``_TOKEN``, one pass);
- every phrase (platform, integration, plan and gazetteer alias) sits in a token trie; at each
  token the longest phrase of each type (at most ``MAX_PHRASE_TOKENS`` tokens) wins, so the cost
  per token is bounded by that constant, not by the size of the gazetteer. Types overlap on
  purpose: "iPhone app" is the platform iOS and the product area "mobile app";
- error codes and HTTP statuses are single-pass regular expressions without nested quantifiers;
  their context checks read a fixed window (``CONTEXT_WINDOW_CHARS``) around each candidate.

Plan names are ordinary words ("Team", "Business"), so a plan is only reported when the text uses
it as a plan: followed by a plan noun ("Business plan"), after a plan verb ("upgraded to
Business"), or chained to another plan ("from Team to Business"). Aliases written with capitals in
``CASE_SENSITIVE_ALIASES`` (words that are also common English, such as "Edge" or "Outlook") must
match with the same case.

The gazetteer's :meth:`Gazetteer.fingerprint` belongs in any cache key of stored entities: a
changed knowledge base must recompute them.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

MAX_PHRASE_TOKENS = 8  # tokens: longer aliases are ignored, so matching costs at most 8 steps per token
MAX_GAZETTEER_TERMS = 50_000  # canonical terms: bounds the trie's memory for a knowledge base's headings
MAX_TEXT_CHARS = 200_000  # characters scanned per call: longer texts are truncated (a conversation is far shorter)
CONTEXT_WINDOW_CHARS = 32  # characters before/after a number or code read to decide whether it is a status/code
PLAN_CONTEXT_TOKENS = 3  # tokens before a plan name searched for a plan verb ("upgraded from the Team")


class EntityType(StrEnum):
    """The kinds of entity the extractor reports (stable values: they are stored and filtered on)."""

    PLATFORM = "platform"
    PLAN = "plan"
    ERROR_CODE = "error_code"
    HTTP_STATUS = "http_status"
    INTEGRATION = "integration"
    FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class Entity:
    """One mention: its type, canonical value, and ``text[start:end]`` as written."""

    type: EntityType
    value: str
    start: int
    end: int


# Platforms: operating systems, the web app, and browsers. Canonical value -> aliases.
PLATFORMS: Mapping[str, tuple[str, ...]] = {
    "iOS": ("iOS", "iPhone", "iPad", "iPadOS"),
    "Android": ("Android",),
    "web": ("web app", "web application", "web version", "web client", "mobile browser", "desktop browser"),
    "Windows": ("Windows",),
    "macOS": ("macOS", "Mac OS", "OS X", "MacBook", "iMac"),
    "Linux": ("Linux", "Ubuntu"),
    "Chrome": ("Chrome", "Google Chrome", "Chromium"),
    "Firefox": ("Firefox",),
    "Safari": ("Safari",),
    "Edge": ("Edge", "Microsoft Edge"),
}

# Integrations: third-party products customers connect to (or compare with). Canonical -> aliases.
INTEGRATIONS: Mapping[str, tuple[str, ...]] = {
    "Slack": ("Slack",),
    "Salesforce": ("Salesforce",),
    "Zapier": ("Zapier",),
    "HubSpot": ("HubSpot",),
    "Stripe": ("Stripe",),
    "PayPal": ("PayPal",),
    "QuickBooks": ("QuickBooks", "QBO"),
    "Xero": ("Xero",),
    "Google Calendar": ("Google Calendar", "GCal"),
    "Google Drive": ("Google Drive",),
    "Google Workspace": ("Google Workspace", "G Suite", "GSuite"),
    "Gmail": ("Gmail",),
    "Outlook": ("Outlook",),
    "Microsoft Teams": ("Microsoft Teams", "MS Teams"),
    "Microsoft 365": ("Microsoft 365", "Office 365", "O365", "M365"),
    "Okta": ("Okta",),
    "Azure AD": ("Azure AD", "Azure Active Directory", "Entra ID", "Microsoft Entra ID"),
    "OneLogin": ("OneLogin",),
    "Auth0": ("Auth0",),
    "Jira": ("Jira",),
    "Asana": ("Asana",),
    "Trello": ("Trello",),
    "GitHub": ("GitHub",),
    "GitLab": ("GitLab",),
    "Zendesk": ("Zendesk",),
    "Intercom": ("Intercom",),
    "Dropbox": ("Dropbox",),
    "Notion": ("Notion",),
    "Shopify": ("Shopify",),
    "Mailchimp": ("Mailchimp",),
    "Twilio": ("Twilio",),
    "DocuSign": ("DocuSign",),
}

# Aliases that are also everyday words: they match only with exactly this capitalisation.
CASE_SENSITIVE_ALIASES = frozenset({"Edge", "Windows", "Outlook", "Notion", "Safari", "Chrome", "Intercom"})

PLAN_NOUNS = frozenset({"plan", "plans", "tier", "subscription", "edition", "license", "licence", "package"})
PLAN_VERBS = frozenset(
    {
        "upgrade",
        "upgraded",
        "upgrading",
        "downgrade",
        "downgraded",
        "downgrading",
        "switch",
        "switched",
        "switching",
        "subscribed",
        "subscribe",
    }
)
PLAN_LINKS = frozenset({"to", "from", "or", "and", "vs", "versus"})

# HTTP statuses customers quote; other 3-digit numbers (room 450, $300) are not statuses.
HTTP_STATUSES = frozenset(
    {301, 302, 304, 307, 308, *range(400, 419), 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, *range(500, 512)}
)
HTTP_REASONS = (
    "bad request",
    "unauthorized",
    "unauthorised",
    "payment required",
    "forbidden",
    "not found",
    "method not allowed",
    "request timeout",
    "conflict",
    "gone",
    "payload too large",
    "too many requests",
    "internal server error",
    "server error",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
    "gateway time-out",
    "moved permanently",
    "unprocessable",
)
_HTTP_CONTEXT_BEFORE = re.compile(
    r"(?:\bhttps?|\bstatus|\berror|\bcode|\bresponse|\breturn(?:s|ed|ing)?|\bgot an?|\bgetting an?|\bgives? (?:me )?an?"
    r"|\bthrows? an?|\bwith an?)\W{0,3}$",
    re.IGNORECASE,
)
_HTTP_CONTEXT_AFTER = re.compile(r"^\W{0,3}(?:errors?\b|status\b|response\b|page\b)", re.IGNORECASE)
_ERROR_CONTEXT_BEFORE = re.compile(
    r"(?:\berror|\bcode|\berrno|\bexception|\bfault|\bfailed with|\bfails with)\b[^.\n]{0,16}$", re.IGNORECASE
)

_TOKEN = re.compile(r"\w+(?:-\w+)*")
_STATUS = re.compile(r"(?<![\w.$€£-])([1-5]\d\d)(?![\w.,]\d|\w)")
# Upper-case identifiers with an underscore (ERR_TOO_MANY_REDIRECTS, INVALID_GRANT): always codes.
_CODE_IDENTIFIER = re.compile(r"(?<!\w)([A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9])(?!\w)")
# Letter prefix + digits (E1234, ERR-42, AUTH-1003): codes only after an error word.
_CODE_PREFIXED = re.compile(r"(?<![\w-])([A-Z]{1,6}-?\d{2,6})(?![\w-])")
_CODE_HEX = re.compile(r"(?<!\w)(0x[0-9A-Fa-f]{4,8})(?!\w)")
_MIN_IDENTIFIER_CHARS = 6  # "A_B" is not an error code; ERR_X and longer are


@dataclass(frozen=True)
class Gazetteer:
    """Product areas and features: canonical name -> aliases (each matched whole-word, any case).

    Built from a knowledge base's titles and headings plus configured terms; the canonical name
    is always an alias of itself.
    """

    terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_terms(cls, terms: Mapping[str, Iterable[str]] | Iterable[str]) -> Gazetteer:
        """A gazetteer from ``{canonical: aliases}`` or a plain list of terms (each its own canonical)."""
        if isinstance(terms, Mapping):
            pairs = [(str(k).strip(), tuple(str(a).strip() for a in v)) for k, v in terms.items()]
        else:
            pairs = [(str(t).strip(), ()) for t in terms]
        if len(pairs) > MAX_GAZETTEER_TERMS:
            raise ValueError(f"gazetteer has {len(pairs)} terms; the limit is {MAX_GAZETTEER_TERMS}")
        cleaned = {k: tuple(dict.fromkeys(a for a in (k, *aliases) if a)) for k, aliases in pairs if k}
        return cls(terms=cleaned)

    def fingerprint(self) -> str:
        """A stable hash of the terms: part of the cache key of stored entities."""
        canonical = sorted((k, sorted(v)) for k, v in self.terms.items())
        return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EntityConfig:
    """What to look for. Plans are configured (nothing about a particular product is built in)."""

    plans: tuple[str, ...] = ()
    gazetteer: Gazetteer = field(default_factory=Gazetteer)
    platforms: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(PLATFORMS))
    integrations: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(INTEGRATIONS))

    def fingerprint(self) -> str:
        """A stable hash of everything that changes the output (for analysis cache keys)."""
        payload = {
            "plans": sorted(self.plans),
            "gazetteer": self.gazetteer.fingerprint(),
            "platforms": sorted((k, sorted(v)) for k, v in self.platforms.items()),
            "integrations": sorted((k, sorted(v)) for k, v in self.integrations.items()),
        }
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class _Phrase:
    type: EntityType
    value: str
    tokens: tuple[str, ...]  # as written in the alias, for case-sensitive checks
    case_sensitive: bool


class _Node:
    """One trie node: children by lower-cased token, and the phrases ending here."""

    __slots__ = ("children", "phrases")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.phrases: list[_Phrase] = []


def _plural(token: str) -> str | None:
    """The plural spelling accepted for an alias's last word ("invoice" -> "invoices")."""
    if not token.isalpha() or len(token) < 3 or token.endswith("s"):
        return None
    return token + ("es" if token.endswith(("x", "ch", "sh")) else "s")


class EntityExtractor:
    """Finds entities in text; build once per configuration, then call :meth:`extract` per text."""

    def __init__(self, config: EntityConfig | None = None) -> None:
        self.config = config or EntityConfig()
        self._root = _Node()
        self._plan_tokens = [tuple(t.lower() for t in _TOKEN.findall(plan)) for plan in self.config.plans]
        for value, aliases in self.config.integrations.items():
            self._add(EntityType.INTEGRATION, value, aliases, plural=False)
        for value, aliases in self.config.platforms.items():
            self._add(EntityType.PLATFORM, value, aliases, plural=False)
        for plan in self.config.plans:
            self._add(EntityType.PLAN, plan, (plan,), plural=False, case_sensitive=True)
        for value, aliases in self.config.gazetteer.terms.items():
            self._add(EntityType.FEATURE, value, aliases, plural=True)

    @property
    def fingerprint(self) -> str:
        """Hash of the configuration (plans, gazetteer, lists): changes whenever results can change."""
        return self.config.fingerprint()

    def _add(
        self, kind: EntityType, value: str, aliases: Iterable[str], *, plural: bool, case_sensitive: bool = False
    ) -> None:
        for alias in aliases:
            tokens = tuple(_TOKEN.findall(alias))
            if not tokens or len(tokens) > MAX_PHRASE_TOKENS:
                continue
            exact = case_sensitive or alias in CASE_SENSITIVE_ALIASES
            spellings = [tokens]
            last_plural = _plural(tokens[-1]) if plural else None
            if last_plural:
                spellings.append((*tokens[:-1], last_plural))
            for spelling in spellings:
                node = self._root
                for token in spelling:
                    node = node.children.setdefault(token.lower(), _Node())
                phrase = _Phrase(kind, value, spelling, exact)
                if phrase not in node.phrases:
                    node.phrases.append(phrase)

    def extract(self, text: str) -> list[Entity]:
        """All entities in ``text`` (first ``MAX_TEXT_CHARS`` characters), ordered by position."""
        text = text[:MAX_TEXT_CHARS]
        found = self._phrases(text)
        taken = [(e.start, e.end) for e in found]
        found.extend(self._codes(text, taken))
        found.sort(key=lambda e: (e.start, e.end))
        return found

    def distinct(self, text: str) -> set[tuple[EntityType, str]]:
        """The distinct (type, value) pairs in ``text``: what a conversation is "about"."""
        return {(e.type, e.value) for e in self.extract(text)}

    # --- phrases (trie) -------------------------------------------------------------------------

    def _phrases(self, text: str) -> list[Entity]:
        """Longest phrase per entity type at each token; types overlap ("iPhone app": iOS + mobile app)."""
        spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        words = [text[s:e] for s, e in spans]
        lowered = [w.lower() for w in words]
        found: list[Entity] = []
        free_from = dict.fromkeys(EntityType, 0)  # per type: first token not inside an earlier match
        accepted_plan_end = -1  # token index after the last accepted plan, for "from Team to Business"
        for i in range(len(words)):
            best: dict[EntityType, tuple[int, _Phrase]] = {}
            node = self._root
            for j in range(i, min(i + MAX_PHRASE_TOKENS, len(words))):
                child = node.children.get(lowered[j])
                if child is None:
                    break
                node = child
                for phrase in node.phrases:
                    if free_from[phrase.type] > i:
                        continue
                    if phrase.case_sensitive and tuple(words[i : j + 1]) != phrase.tokens:
                        continue
                    if phrase.type is EntityType.PLAN and not self._used_as_plan(lowered, i, j + 1, accepted_plan_end):
                        continue
                    best[phrase.type] = (j + 1 - i, phrase)  # later j is longer: the longest wins
            for kind, (length, phrase) in best.items():
                found.append(Entity(kind, phrase.value, spans[i][0], spans[i + length - 1][1]))
                free_from[kind] = i + length
                if kind is EntityType.PLAN:
                    accepted_plan_end = i + length
        return found

    def _used_as_plan(self, lowered: list[str], start: int, end: int, accepted_plan_end: int) -> bool:
        """Whether the plan name at tokens [start, end) is used as a plan, judged by its neighbours."""
        if end < len(lowered) and lowered[end] in PLAN_NOUNS:
            return True
        if any(t in PLAN_VERBS for t in lowered[max(0, start - PLAN_CONTEXT_TOKENS) : start]):
            return True
        if start >= 2 and lowered[start - 1] in PLAN_LINKS and accepted_plan_end == start - 1:
            return True  # "from Team to Business": the second of a chain
        if end + 1 < len(lowered) and lowered[end] in PLAN_LINKS:  # "the Team or Business plan": the first
            for plan in self._plan_tokens:
                after = end + 1 + len(plan)
                if tuple(lowered[end + 1 : after]) == plan and after < len(lowered) and lowered[after] in PLAN_NOUNS:
                    return True
        return False

    # --- codes (patterns) -----------------------------------------------------------------------

    def _codes(self, text: str, taken: list[tuple[int, int]]) -> list[Entity]:
        merged: list[tuple[int, int]] = []  # phrase spans merged into disjoint, ordered intervals
        for s, e in sorted(taken):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        taken = merged
        starts = [s for s, _ in taken]  # one bisect per candidate keeps this linear

        def free(start: int, end: int) -> bool:
            at = bisect.bisect_left(starts, end)  # phrases starting before this candidate ends
            return at == 0 or taken[at - 1][1] <= start

        found: list[Entity] = []
        for match in _CODE_IDENTIFIER.finditer(text):
            if len(match.group(1)) >= _MIN_IDENTIFIER_CHARS and free(*match.span(1)):
                found.append(Entity(EntityType.ERROR_CODE, match.group(1), *match.span(1)))
        for match in _CODE_HEX.finditer(text):
            found.append(Entity(EntityType.ERROR_CODE, match.group(1).lower(), *match.span(1)))
        for match in _CODE_PREFIXED.finditer(text):
            before = text[max(0, match.start() - CONTEXT_WINDOW_CHARS) : match.start()]
            if _ERROR_CONTEXT_BEFORE.search(before) and free(*match.span(1)):
                found.append(Entity(EntityType.ERROR_CODE, match.group(1), *match.span(1)))
        for match in _STATUS.finditer(text):
            if int(match.group(1)) not in HTTP_STATUSES:
                continue
            before = text[max(0, match.start() - CONTEXT_WINDOW_CHARS) : match.start()]
            after = text[match.end() : match.end() + CONTEXT_WINDOW_CHARS]
            after_lower = after.lower().lstrip(" -:(")
            if (
                _HTTP_CONTEXT_BEFORE.search(before)
                or _HTTP_CONTEXT_AFTER.search(after)
                or after_lower.startswith(HTTP_REASONS)
            ):
                found.append(Entity(EntityType.HTTP_STATUS, match.group(1), *match.span(1)))
        return found

"""Personal-data detection and masking for customer-support text.

Threadline stores every message verbatim and quotes customers word for word; personal data is
hidden only when text is *shown or written out* (story evidence, exports, LLM prompts). This
module therefore never changes stored text: :func:`detect_pii` returns character spans, and
:func:`mask` / :func:`mask_span` render a copy with each span replaced by a marker such as
``[email]``. Offsets computed on the original text stay valid.

Detection is pattern based, with checksums and number metadata where they exist (no NER model):

* ``email``     - RFC-5322-ish address regex (bounded repetition).
* ``phone``     - :mod:`phonenumbers` (Google libphonenumber metadata) over US, UK, German and
  French national formats, any ``+CC`` / ``00CC`` international format, and a cue-word fallback
  ("call me on ...") for phone-shaped numbers the metadata does not know.
* ``card``      - 13-19 digit runs (spaces/dashes allowed) that pass the Luhn check
  (:mod:`stdnum.luhn`) and start with a known issuer prefix.
* ``iban``      - IBANs validated by :mod:`stdnum.iban` (country format and mod-97).
* ``account``   - account numbers, UK sort codes and US routing numbers after a cue word.
* ``pin`` / ``code`` - digits following (or, for PINs, preceding) a cue word such as "PIN",
  "verification code", "OTP", "CVV".
* ``password``  - the value after "password:" / "password is ..." when it looks like a secret.
* ``api_key``   - known vendor prefixes (``sk-``, ``ghp_``, ``xoxb-``, ``AKIA``...), JWTs,
  bearer tokens, values after "api key"/"token"/"secret", and high-entropy mixed tokens.
* ``address``   - best effort street addresses (US/UK/DE/FR shapes); recall is reported apart.

Running time is linear in the input: every regular expression uses bounded or possessive
repetition with no nested quantifiers over overlapping classes, cue windows are bounded, and
long inputs are processed in overlapping chunks (see :data:`CHUNK_CHARS`).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Final, NamedTuple, overload

from threadline.config import get_settings

if TYPE_CHECKING:  # for annotations only: libphonenumber loads when a text with a digit is first masked
    import phonenumbers

logger = logging.getLogger(__name__)


@functools.cache
def _phone_lib() -> ModuleType:
    """libphonenumber (`phonenumbers`), loaded when the first text with a digit is masked.

    Most texts a read command shows (names, titles, sentences) hold no digit and never need it.
    """
    import phonenumbers  # loaded on first use, not at start-up: a read command's texts seldom hold a digit

    return phonenumbers


class _NumberChecks(NamedTuple):
    """python-stdnum's check modules, each with an ``is_valid``."""

    iban: ModuleType
    luhn: ModuleType
    us_routing_number: ModuleType


@functools.cache
def _number_checks() -> _NumberChecks:
    """python-stdnum's IBAN, Luhn and US routing-number checks, loaded when a candidate number is first checked."""
    # loaded on first use, not at start-up: only texts with a card-, IBAN- or routing-shaped number need them
    from stdnum import iban, luhn
    from stdnum.us import rtn

    return _NumberChecks(iban, luhn, rtn)


__all__ = [
    "PII_VERSION",
    "PiiKind",
    "PiiSpan",
    "clear_detection_cache",
    "detect_pii",
    "mask",
    "mask_for_display",
    "mask_span",
    "mask_span_for_display",
    "marker",
    "masking_enabled",
]

PII_VERSION: Final = "1"  # bump when detections can change: masked output is derived data


class PiiKind(enum.StrEnum):
    """What a detected span is; the value is also the marker text (``[value]``)."""

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    ACCOUNT = "account"
    PIN = "pin"
    CODE = "code"
    PASSWORD = "password"
    API_KEY = "api_key"
    ADDRESS = "address"


class PiiSpan(NamedTuple):
    """One detection: ``text[start:end]`` is personal data of type ``kind``."""

    start: int
    end: int
    kind: PiiKind


def marker(kind: PiiKind) -> str:
    """The placeholder shown instead of a span of `kind`, e.g. ``[phone]``."""
    return f"[{kind.value}]"


# When spans of different kinds overlap they are merged into one span labelled with the kind
# that comes first here: the more specific, checksum-validated detector wins.
_PRIORITY: Final[tuple[PiiKind, ...]] = (
    PiiKind.EMAIL,
    PiiKind.API_KEY,
    PiiKind.IBAN,
    PiiKind.CARD,
    PiiKind.ACCOUNT,
    PiiKind.PHONE,
    PiiKind.PASSWORD,
    PiiKind.PIN,
    PiiKind.CODE,
    PiiKind.ADDRESS,
)
_RANK: Final[dict[PiiKind, int]] = {kind: rank for rank, kind in enumerate(_PRIORITY)}

# --- limits -------------------------------------------------------------------------------

# characters: texts longer than this are scanned in overlapping chunks. libphonenumber's
# matcher gives up after a fixed number of candidates per call, so unbounded inputs would
# silently lose recall; chunking keeps each call small and total work linear.
CHUNK_CHARS: Final = 8_000
# characters: overlap between consecutive chunks; must exceed the longest entity we detect
# that is not a single token (addresses, spaced IBANs, cue + value windows) so that every
# entity lies wholly inside at least one chunk.
CHUNK_OVERLAP: Final = 400
# detections are cached per text: mask_span() is called once per quote, often several times
# for the same message. 256 entries of a few spans each is a few hundred KB at most.
_CACHE_ENTRIES: Final = 256

# --- e-mail -------------------------------------------------------------------------------

# local part <= 64 chars (RFC 5321), labels <= 63 chars, <= 8 labels, TLD 2-24 letters.
# Label class excludes '.', so the label repetition cannot backtrack ambiguously.
_EMAIL: Final = re.compile(r"(?<![\w.+%-])[\w][\w.+%'-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])")

# --- phone --------------------------------------------------------------------------------

# Regions whose *national* formats we recognise. International formats (+CC / 00CC) are
# recognised for every country whatever the region list says.
PHONE_REGIONS: Final[tuple[str, ...]] = ("US", "GB", "DE", "FR")
# Regions whose national numbers always start with the trunk prefix 0; a national-format
# candidate without it is an ID or an amount far more often than a phone number.
_TRUNK_ZERO_REGIONS: Final = frozenset({"GB", "DE", "FR"})
# Regions the libphonenumber matcher runs with (one full pass each): US for North American
# numbers, DE as the candidate extractor for every trunk-zero region (see _phones).
_MATCHER_REGIONS: Final[tuple[str, ...]] = ("US", "DE")
# characters: libphonenumber's matcher runs on windows this long. Its cost per character grows
# with the length of its input (measured on "1 1 1 ...": 5.5 us/char at 250 chars, 12 at 1,000,
# 20 at 2,000, for the two matcher regions), so short windows bound that growth; at 1,000 the
# per-call overhead is still negligible.
PHONE_WINDOW_CHARS: Final = 1_000
# characters: window overlap; longer than any formatted phone number (about 30 characters) plus
# its surroundings, so every number lies whole inside one window.
PHONE_WINDOW_OVERLAP: Final = 100
# digits: shortest / longest phone number we accept from the cue-word fallback (E.164 max 15).
_PHONE_MIN_DIGITS: Final = 9
_PHONE_MAX_DIGITS: Final = 15
# characters: how far before a number a cue word ("call", "mobile", ...) may stand.
_PHONE_CUE_WINDOW: Final = 40
_PHONE_CUE: Final = re.compile(
    r"\b(?:call|calls|called|phone|tel|telephone|mobile|cell|cellphone|text|txt|sms|whatsapp|"
    r"fax|ring|reach|reachable|contact|number|numéro|numero|portable|handy|telefon|rückruf)\b",
    re.IGNORECASE,
)
# A phone-shaped run for the fallback: optional +/00, digit groups separated by one to three
# of space . - / or a parenthesised group. Groups are delimited by mandatory separators, so the
# repetition is unambiguous; possessive quantifiers forbid backtracking altogether.
_PHONE_SHAPE: Final = re.compile(
    r"(?<![\w+])(?:\+|00)?+\s?+(?:\(\d{1,5}\)|\d{1,15}+)"
    r"(?:(?:[ .\-/]{1,3}+|\s?\(0\)\s?)(?:\(\d{1,5}\)|\d{1,15}+)){0,8}+(?![\w])"
)

# --- cards --------------------------------------------------------------------------------

# Any decimal digit, as libphonenumber's matcher counts them (Unicode \d: fullwidth and Arabic-Indic digits too).
_ANY_DIGIT: Final = re.compile(r"\d")
# A run of digit groups separated by single spaces or dashes. Groups are maximal digit runs
# (possessive), so no backtracking; windows of groups are tried in Python.
_DIGIT_RUN: Final = re.compile(r"(?<![\w-])\d{1,19}+(?:[ -]\d{1,19}+){0,9}+(?![\w])")
_CARD_MIN_DIGITS: Final = 13  # shortest PAN in use (old Visa)
_CARD_MAX_DIGITS: Final = 19  # ISO/IEC 7812 maximum
# Issuer prefixes (IIN) of the schemes in use: Visa 4, Mastercard 51-55 and 2221-2720, Amex
# 34/37, Discover 6011/644-649/65, JCB 3528-3589, Diners 300-305/36/38/39, Maestro 50/56-69,
# UnionPay 62, Mir 2200-2204. Rejecting other first digits (0, 1, 7, 8, 9) removes most
# Luhn-valid order numbers and IDs (Luhn alone passes one random number in ten).
_CARD_IIN: Final = re.compile(r"4|5[0-9]|2[2-7]|3[0-9]|6[0-9]")

# --- IBAN ---------------------------------------------------------------------------------

# Compact form, or groups of four separated by single spaces with a short last group.
# Case-insensitive: customers type "fr76 3000 ..." too; the checksum keeps this precise.
_IBAN: Final = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}+|(?: [A-Z0-9]{4}){2,7}+(?: [A-Z0-9]{1,3})?+)(?![A-Za-z0-9])",
    re.IGNORECASE,
)

# --- account numbers ------------------------------------------------------------------------

_ACCOUNT: Final = re.compile(
    r"\b(?:bank\s{1,3})?(?:account|acct|a/c|kontonummer|kontonr|konto|compte)\.?"
    r"(?:\s{0,3}(?:number|num|no|nr|n°|#)\b\.?|\s{0,3}#)?"
    r"(?:\s{0,3}(?:is|was|:|=|#|-)){0,2}\s{0,3}"
    r"(?P<value>\d(?:[ -]?\d){5,19}+)(?![\w-])",
    re.IGNORECASE,
)
_SORT_CODE: Final = re.compile(
    r"\bsort\s?code\s{0,3}(?:is|:|=)?\s{0,3}(?P<value>\d{2}[- ]?\d{2}[- ]?\d{2})(?![\w-])",
    re.IGNORECASE,
)
_ROUTING: Final = re.compile(
    r"\b(?:routing|aba|transit)(?:\s{1,3}(?:number|no\.?|#))?\s{0,3}(?:is|:|=)?\s{0,3}(?P<value>\d{9})(?![\w-])",
    re.IGNORECASE,
)

# --- PINs and one-time codes ----------------------------------------------------------------

# characters: how far after a cue word (or after the end of the cue's sentence) a value may
# stand; "my pin is either 1596 or 9431" needs 30, "It could be 6612 or 2087" after a full stop 25.
_SECRET_CUE_WINDOW: Final = 60
# "pin" is also a verb ("pin the task to the top", a feature of task tools), so the cue counts
# only as a noun: written "PIN", after a determiner ("my pin"), or before a value or a verb
# ("pin is", "pin: ", "pin 9431").
_PIN_CUE: Final = re.compile(
    r"(?:\b(?P<det>[A-Za-z]{1,10})\s{1,3})?\b(?P<cue>pin|pins|pin-code|pincode|geheimzahl)\b"
    r"(?P<after>\s{1,3}(?:number|code|no\.?)\b|\s{0,3}(?:is|was|were|are|might|may|could|should|will|[:=#]|['’]s)"
    r"|\s{0,3}(?=\d))?",
    re.IGNORECASE,
)
_PIN_DETERMINERS: Final = frozenset(
    "my your our his her their the a new old card default wrong correct same this that its".split()
)
_PIN_AFTER: Final = re.compile(
    r"(?<![\w.,/:$€£-])(?P<value>\d{4,8})\s{1,3}(?:is|as|was)\s{1,3}(?:my|the|our)\s{1,3}(?:new\s{1,3}|old\s{1,3})?pin\b",
    re.IGNORECASE,
)
_CODE_CUE: Final = re.compile(
    r"\b(?:(?P<qual>[\w-]{1,20})\s{1,3})?(?P<cue>code|codes|otp|passcode|cvv2?|cvc2?|csc|tan|token code)\b",
    re.IGNORECASE,
)
_CODE_AFTER: Final = re.compile(
    r"(?<![\w.,/:$€£-])(?P<value>(?:[A-Z]{1,2}-)?\d{4,8})\s{1,3}(?:is|as|was)\s{1,3}(?:my|the|your)\s{1,3}"
    r"(?:[\w-]{1,20}\s{1,3})?(?:code|otp|passcode)\b",
    re.IGNORECASE,
)
# Words before "code" that make it a non-secret code: error and HTTP codes, product codes...
_NON_SECRET_CODE_QUALIFIERS: Final = frozenset(
    """
    error status exit response http return result reason fault event promo promotional discount coupon
    voucher referral gift zip postal post postcode area country dial dialling dialing source qr bar product
    tax vat currency bank branch swift bic sort iso color colour sample example snippet embed html css
    python javascript js sql
    """.split()
)
# Qualifiers that allow three-digit values (card security codes); other codes need four.
_CVV_CUES: Final = frozenset({"cvv", "cvv2", "cvc", "cvc2", "csc"})
# A secret number inside a cue window: 3-8 digits, optionally "123 456" / "1234-5678" or a
# letter prefix ("G-582013"); not part of an amount, date, time, version or decimal.
_SECRET_NUMBER: Final = re.compile(
    r"(?<![\w.,/$€£#+-])(?P<value>(?:[A-Z]{1,2}-)?\d{3,8}(?:[ -]\d{3,4})?)(?![\w/:%€£$-]|[.,]\d|\s?%)"
)
# Words right after a number that make it a quantity, not a secret ("3 tries", "20 euros").
_QUANTITY_WORD: Final = re.compile(
    r"\s{0,2}(?:digits?|times?|tries|attempts?|seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|"
    r"years?|pounds?|euros?|dollars?|cents?|usd|eur|gbp|chf|percent|items?|rows?|users?|seats?|characters?|chars?)\b",
    re.IGNORECASE,
)
# Words right before a number that make a 19xx/20xx number a year ("blocked in 2024").
_YEAR_PREPOSITION: Final = re.compile(
    r"(?:in|since|on|from|until|till|by|after|before|during|of|year|early|late|mid)\s{1,3}$", re.I
)
_YEAR: Final = re.compile(r"(?:19|20)\d\d")
_SENTENCE_STOP: Final = re.compile(r"[.!?;\n](?:\s|$)")

# --- passwords ----------------------------------------------------------------------------

_PASSWORD_WORD: Final = r"(?:password|passwort|passwd|passphrase|passcode|kennwort|mot de passe|pwd)"
# "password: x", "pwd=x", "pass: x" - a separator makes the next token the value, whatever it is.
_PASSWORD_STRONG: Final = re.compile(r"\b(?:" + _PASSWORD_WORD + r"|pass|pw)\s{0,3}[:=]\s{0,3}", re.IGNORECASE)
# "my password is x", "password was x", "changed the password to 'x'", "new password x".
_PASSWORD_WEAK: Final = re.compile(
    r"\b"
    + _PASSWORD_WORD
    # "password for the admin account is x": up to three words naming what it is for
    + r"(?:\s{1,3}(?:for|on|of)(?:\s{1,3}[\w@.'-]{1,40}){1,3}(?=\s{1,3}(?:is|was)\b))?"
    + r"(?:\s{1,3}(?P<verb>is|was|are|were|reads)\b|\s{1,3}(?P<prep>to|as|of|set to|changed to)\b)?"
    r"(?:\s{1,3}(?:now|still|just|actually|literally|currently|simply))?\s{1,3}",
    re.IGNORECASE,
)
# digits: an all-digit value after a password cue is a passcode; shorter numbers are counts.
_PASSCODE_MIN_DIGITS: Final = 4
# characters: longest password value we mask (a passphrase); longer quoted text is prose.
_PASSWORD_MAX_CHARS: Final = 64
_QUOTED: Final = re.compile(rf"([\"'“‘«])([^\"'“”‘’«»\n]{{1,{_PASSWORD_MAX_CHARS}}})([\"'”’»])")
_TOKEN: Final = re.compile(rf"[^\s]{{1,{_PASSWORD_MAX_CHARS}}}")
_TRAILING_PUNCT: Final = re.compile(r"[.,;:)\]}>\"'”’]+$")
_CONTRACTION: Final = re.compile(r"[A-Za-z]+['’][a-z]{1,2}")
# Lower-case words that follow "password is/was" and describe it rather than reveal it.
# Words ending in -ed, -ing or -ly are treated the same way without listing them.
_DESCRIPTIVE_WORDS: Final = frozenset(
    """
    a an the my our your his her their its this that these those same one another new old
    not no never now still just also already again too very so quite really only even always
    correct incorrect wrong right invalid valid ok okay fine good bad weak strong long short
    blank empty null missing lost gone expired locked blocked disabled broken useless
    required needed necessary mandatory optional different identical similar unknown known
    secure insecure safe unsafe simple complex easy hard difficult case sensitive
    there here what which who how why when where whatever something nothing anything everything
    all any some none both either neither each every more less most least
    in on at to for from with without by of about into over under after before out up down off
    and or but if then than because since until while as is was be been being are were
    it he she they we you i me him them us
    too-long too-short characters letters numbers digits symbols
    definitely probably maybe perhaps possibly certainly clearly apparently
    supposed meant able unable about around approximately
    working accepted rejected changed reset saved stored updated
    shown hidden visible displayed
    mine yours ours theirs
    """.split()
)
_DESCRIPTIVE_SUFFIX: Final = re.compile(r"(?:ed|ing|ly|n't)$", re.IGNORECASE)

# --- API keys and tokens --------------------------------------------------------------------

_API_KEY_PREFIXED: Final = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-|svcacct-|admin-|ant-(?:api\d{2}-|admin\d{2}-)?)?[A-Za-z0-9_-]{20,200}+"  # OpenAI / Anthropic
    r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,200}+"  # Stripe
    r"|(?:whsec|shpat|shpss|shpca|shppa)_[A-Za-z0-9]{20,200}+"  # Stripe webhooks, Shopify
    r"|gh[pousr]_[A-Za-z0-9]{30,255}+"  # GitHub classic tokens
    r"|github_pat_[A-Za-z0-9_]{22,255}+"  # GitHub fine-grained tokens
    r"|xox[abposre]-[A-Za-z0-9-]{10,250}+"  # Slack
    r"|xapp-[A-Za-z0-9-]{10,250}+"  # Slack app-level
    r"|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|ya29\.[0-9A-Za-z_-]{20,500}+"  # Google OAuth access token
    r"|glpat-[A-Za-z0-9_-]{20,200}+"  # GitLab
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|hf_[A-Za-z0-9]{30,200}+"  # Hugging Face
    r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{8,2000}+\.eyJ[A-Za-z0-9_-]{8,4000}+\.[A-Za-z0-9_-]{8,2000}+"  # JWT
    r")(?![A-Za-z0-9_-])"
)
_BEARER: Final = re.compile(r"\b(?:bearer|token)\s{1,3}(?P<value>[A-Za-z0-9._~+/-]{16,4096}+=*)", re.IGNORECASE)
# "api key: x", "secret x", "token=x", "access_token=x" (also URL query parameters).
_API_KEY_CUE: Final = re.compile(
    r"(?:\b(?:api|access|auth|refresh|bearer|client|app|webhook|signing|private|secret)?[ _-]?"
    r"(?:key|token|secret|signature|sig)\b)(?P<sep>\s{1,3}(?:is|was)|\s{0,3}[:=])?\s{0,3}"
    r"(?P<value>[A-Za-z0-9._~+/-]{16,4096}+=*)",
    re.IGNORECASE,
)
# Runs of token characters; each maximal run is judged in Python.
_TOKEN_RUN: Final = re.compile(r"[A-Za-z0-9+/_-]{20,}+=*")
# characters: shortest high-entropy token masked without a cue word.
_ENTROPY_MIN_CHARS: Final = 20
# bits per character: Shannon entropy floor; random base62 of length 20-40 scores 4.2-5.0,
# English CamelCase identifiers 3.8-4.2, so entropy alone is not enough (see next).
_ENTROPY_MIN_BITS: Final = 3.5
# share of adjacent character pairs that change class (upper/lower/digit/other); random base62
# scores about 0.6, CamelCase words with a year 0.3-0.4.
_ENTROPY_MIN_SWITCH_RATE: Final = 0.45
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PLAIN_WORD_SEGMENT: Final = re.compile(r"[a-z]{2,}(?:[-_][a-z]{2,})*|[A-Z]?[a-z]{2,}")

# --- addresses (best effort) ----------------------------------------------------------------

_STREET_SUFFIX: Final = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Cres|Grove|Gardens|Row|Mews|"
    r"Hill|Walk|Park|Green|Plaza|Alley|Broadway|Loop|Pike|Crossing|Commons|Esplanade|Embankment|Quay|Wharf|"
    r"Parade|Rise|Heights)\b\.?"
)
_CAP_WORD: Final = r"[A-Z][A-Za-z'’-]{1,24}"
_US_STATE_ZIP: Final = r"[A-Z]{2}\s\d{5}(?:-\d{4})?"
_UK_POSTCODE: Final = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_CITY: Final = _CAP_WORD + r"(?:\s" + _CAP_WORD + r"){0,2}"
_ADDRESS_EN: Final = re.compile(
    r"(?:\b(?i:Flat|Apartment|Apt|Unit|Suite)\s[A-Za-z0-9]{1,5},?\s)?"
    r"\b\d{1,6}[A-Za-z]?\s(?:[NSEW]\.?\s|(?:North|South|East|West)\s)?"
    r"(?:"
    + _CAP_WORD
    + r"\s){1,4}"
    + _STREET_SUFFIX
    + r"(?:,?\s(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Flat|#)\.?\s?#?[A-Za-z0-9-]{1,6})?"
    r"(?:,\s" + _CITY + r",?\s(?:" + _US_STATE_ZIP + r"|" + _UK_POSTCODE + r"))?"
)
_PO_BOX: Final = re.compile(
    r"\bP\.?\s?O\.?\s?Box\s\d{1,7}(?:,\s" + _CITY + r",?\s(?:" + _US_STATE_ZIP + r"|" + _UK_POSTCODE + r"))?",
    re.IGNORECASE,
)
_ADDRESS_DE: Final = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüß-]{1,30}(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer|chaussee)"
    r"\s\d{1,4}[a-z]?\b(?:,\s\d{5}\s[A-ZÄÖÜ][a-zäöüß-]{1,30})?"
)
_ADDRESS_FR: Final = re.compile(
    r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s(?:rue|avenue|av\.|boulevard|bd|place|allée|chemin|impasse|quai|route|cours)"
    r"\s(?:(?:de|du|des|la|le|l'|d')\s?){0,3}[A-ZÉÈ][\w'’-]{1,30}(?:\s[A-ZÉÈ][\w'’-]{1,30}){0,3}"
    r"(?:,\s\d{5}\s[A-Z][\w-]{1,30})?"
)
# Lower-case "19 elm street": one or two name words, full-word suffix only, and no word that
# makes it prose ("20 minutes down the road").
_LOWER_STREET_SUFFIX: Final = r"(?:street|avenue|road|boulevard|lane)\b"
_ADDRESS_EN_LOWER: Final = re.compile(
    r"(?:\b(?:flat|apartment|apt|unit|suite)\s[a-z0-9]{1,5},?\s)?"
    r"\b\d{1,6}[a-z]?\s(?P<name>[a-z][a-z'-]{1,24}(?:\s[a-z][a-z'-]{1,24})?)\s" + _LOWER_STREET_SUFFIX
)
_PROSE_WORDS: Final = frozenset(
    """
    a an the on in at to of off by for from down up along across over this that my our your their his her its
    and or but minutes minute hours hour days day weeks week months month years year miles mile km kilometres
    kilometers metres meters times time people cars trucks lanes more less other same main
    """.split()
)
_ADDRESS_PATTERNS: Final = (_ADDRESS_EN, _PO_BOX, _ADDRESS_DE, _ADDRESS_FR)


# ============================================================================================
# detectors: each yields spans for one chunk of text
# ============================================================================================


def _emails(text: str) -> Iterator[PiiSpan]:
    for match in _EMAIL.finditer(text):
        yield PiiSpan(match.start(), match.end(), PiiKind.EMAIL)


def _digit_count(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def _has_phone_cue(text: str, start: int) -> bool:
    return _PHONE_CUE.search(text, max(0, start - _PHONE_CUE_WINDOW), start) is not None


def _is_international(raw: str, number: phonenumbers.PhoneNumber) -> bool:
    """True for "+CC ..." and "00CC ..." (the IDD used in Europe): the country code is explicit."""
    if raw.startswith("+"):
        return True
    digits = "".join(ch for ch in raw if ch.isdigit())
    return digits.startswith(f"00{number.country_code}")


def _valid_national(raw: str, region: str) -> bool:
    phonenumbers = _phone_lib()
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number_for_region(number, region))


def _phones(text: str) -> Iterator[PiiSpan]:
    """Phone numbers validated by libphonenumber, plus phone-shaped numbers after a cue word.

    libphonenumber's matcher is the expensive part (it parses every candidate), so it runs
    twice, not once per region: with region US, and with region DE, whose candidates stand for
    every trunk-zero region (a national number there starts with 0) and are then checked
    against each region in :data:`PHONE_REGIONS` by a cheap parse of the raw string. A text
    without a digit (most titles and sentences) skips both: every candidate holds a digit.
    """
    if _ANY_DIGIT.search(text) is None:
        return
    for window_start, window_end in _phone_windows(text):
        window = text[window_start:window_end]
        for span in _matched_phones(window):
            yield PiiSpan(span.start + window_start, span.end + window_start, PiiKind.PHONE)
    for match in _PHONE_SHAPE.finditer(text):
        raw = match.group()
        if not (_PHONE_MIN_DIGITS <= _digit_count(raw) <= _PHONE_MAX_DIGITS):
            continue
        shaped = raw.startswith("+") or raw.startswith("00") or not raw.isdigit()
        if shaped and _has_phone_cue(text, match.start()):
            yield PiiSpan(match.start(), match.end(), PiiKind.PHONE)


def _phone_windows(text: str) -> Iterator[tuple[int, int]]:
    """Overlapping windows of at most PHONE_WINDOW_CHARS, cut at whitespace where possible.

    libphonenumber's matcher costs more per character the longer its input is (it re-examines
    long digit runs), so it gets short windows; the overlap exceeds any phone number, so each
    number lies whole in some window, and fragments at a cut overlap the full match and merge.
    """
    length = len(text)
    start = 0
    while True:
        end = min(length, start + PHONE_WINDOW_CHARS)
        if end < length:
            cut = text.rfind(" ", end - PHONE_WINDOW_OVERLAP, end)
            if cut > start:
                end = cut
        yield start, end
        if end >= length:
            return
        next_start = end - PHONE_WINDOW_OVERLAP
        space = text.find(" ", next_start, end)
        start = space + 1 if space >= 0 else next_start


def _matched_phones(text: str) -> Iterator[PiiSpan]:
    """Numbers libphonenumber finds in `text` and that pass our validity rules."""
    phonenumbers = _phone_lib()
    for matcher_region in _MATCHER_REGIONS:
        matcher = phonenumbers.PhoneNumberMatcher(text, matcher_region, leniency=phonenumbers.Leniency.POSSIBLE)
        for found in matcher:
            raw = found.raw_string
            if _is_international(raw, found.number):
                ok = phonenumbers.is_possible_number(found.number) and _digit_count(raw) >= _PHONE_MIN_DIGITS
            elif matcher_region in _TRUNK_ZERO_REGIONS:
                ok = raw.lstrip("(").startswith("0") and any(
                    _valid_national(raw, region) for region in PHONE_REGIONS if region in _TRUNK_ZERO_REGIONS
                )
            else:
                ok = phonenumbers.is_valid_number_for_region(found.number, matcher_region)
                if ok and raw.isdigit():
                    # an unseparated digit run is an ID more often than a phone number
                    ok = _has_phone_cue(text, found.start)
            if ok:
                yield PiiSpan(found.start, found.end, PiiKind.PHONE)


def _card_number_ok(digits: str) -> bool:
    return (
        _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS
        and _CARD_IIN.match(digits) is not None
        and _number_checks().luhn.is_valid(digits)
    )


def _cards(text: str) -> Iterator[PiiSpan]:
    """Luhn-valid card numbers: one unseparated run, or consecutive groups of 3-6 digits.

    A run of digit groups may hold more than a card ("4111 1111 1111 1111 2026"), or two cards;
    windows of consecutive groups are tried left to right and the longest valid one is taken.
    Runs have at most 10 groups, so this is a bounded amount of work per run.
    """
    for match in _DIGIT_RUN.finditer(text):
        base = match.start()
        groups = [(base + g.start(), base + g.end()) for g in re.finditer(r"\d+", match.group())]
        i = 0
        while i < len(groups):
            best_j = -1
            for j in range(i, len(groups)):
                if j > i and not all(3 <= e - s <= 6 for s, e in groups[i : j + 1]):
                    break
                digits = "".join(text[s:e] for s, e in groups[i : j + 1])
                if len(digits) > _CARD_MAX_DIGITS:
                    break
                if _card_number_ok(digits):
                    best_j = j
            if best_j >= 0:
                yield PiiSpan(groups[i][0], groups[best_j][1], PiiKind.CARD)
                i = best_j + 1
            else:
                i += 1


def _ibans(text: str) -> Iterator[PiiSpan]:
    """IBANs valid for their country (length, BBAN format and mod-97 check digits)."""
    for match in _IBAN.finditer(text):
        value = match.group()
        end = match.end()
        # a greedy spaced match may have taken one group too many: drop trailing groups
        while value:
            # country structure and mod-97; national check digits and bank-code registries are
            # not required: a mistyped-but-plausible IBAN is still personal data to hide
            if _number_checks().iban.is_valid(value.upper(), check_country=False):
                yield PiiSpan(match.start(), end, PiiKind.IBAN)
                break
            cut = value.rfind(" ")
            if cut <= 4:
                break
            end = match.start() + cut
            value = value[:cut]


def _accounts(text: str) -> Iterator[PiiSpan]:
    """Account numbers and sort codes after a cue word; US routing numbers with their checksum."""
    for pattern in (_ACCOUNT, _SORT_CODE):
        for match in pattern.finditer(text):
            yield PiiSpan(match.start("value"), match.end("value"), PiiKind.ACCOUNT)
    for match in _ROUTING.finditer(text):
        if _number_checks().us_routing_number.is_valid(match.group("value")):
            yield PiiSpan(match.start("value"), match.end("value"), PiiKind.ACCOUNT)


def _cue_windows(text: str, start: int) -> Iterator[tuple[int, int]]:
    """The rest of the cue's sentence, then the next sentence; each bounded in length.

    Customers often name the secret in the sentence after the cue ("I remembered my PIN. It's
    either 6612 or 2087."), so the next sentence is searched when the cue's own has no value.
    """
    for _ in range(2):
        limit = min(len(text), start + _SECRET_CUE_WINDOW)
        stop = _SENTENCE_STOP.search(text, start, limit)
        end = stop.start() if stop else limit
        yield start, end
        if stop is None:
            return
        start = stop.end()


def _is_quantity_or_year(text: str, start: int, end: int) -> bool:
    if _QUANTITY_WORD.match(text, end):
        return True
    value = text[start:end]
    before = text[max(0, start - 16) : start]
    return _YEAR.fullmatch(value) is not None and _YEAR_PREPOSITION.search(before) is not None


def _secret_numbers(text: str, start: int, min_digits: int) -> Iterator[tuple[int, int]]:
    for window_start, window_end in _cue_windows(text, start):
        found = False
        for match in _SECRET_NUMBER.finditer(text, window_start, window_end):
            s, e = match.span("value")
            if _digit_count(match.group("value")) < min_digits or _is_quantity_or_year(text, s, e):
                continue
            found = True
            yield s, e
        if found:
            return


# digits: shortest PIN (ISO 9564 allows 4-12; card PINs in use are 4-6, app PINs up to 8).
_PIN_MIN_DIGITS: Final = 4
# digits: shortest one-time / verification code (SMS OTPs are 4-8; CVV/CVC are 3).
_CODE_MIN_DIGITS: Final = 4
_CVV_MIN_DIGITS: Final = 3


def _pins_and_codes(text: str) -> Iterator[PiiSpan]:
    for match in _PIN_CUE.finditer(text):
        cue = match.group("cue")
        determiner = (match.group("det") or "").lower()
        if not (cue.isupper() or determiner in _PIN_DETERMINERS or match.group("after") is not None):
            continue
        for s, e in _secret_numbers(text, match.end(), _PIN_MIN_DIGITS):
            yield PiiSpan(s, e, PiiKind.PIN)
    for match in _PIN_AFTER.finditer(text):
        yield PiiSpan(match.start("value"), match.end("value"), PiiKind.PIN)
    for match in _CODE_CUE.finditer(text):
        qualifier = (match.group("qual") or "").lower()
        if qualifier in _NON_SECRET_CODE_QUALIFIERS:
            continue
        cue = match.group("cue").lower()
        min_digits = _CVV_MIN_DIGITS if (cue in _CVV_CUES or qualifier == "security") else _CODE_MIN_DIGITS
        for s, e in _secret_numbers(text, match.end(), min_digits):
            yield PiiSpan(s, e, PiiKind.CODE)
    for match in _CODE_AFTER.finditer(text):
        yield PiiSpan(match.start("value"), match.end("value"), PiiKind.CODE)


def _looks_like_secret(token: str) -> bool:
    """A token that is not an ordinary word: it has a digit or symbol, or mixed case inside.

    Sentence punctuation at the end ("work?") does not count as a symbol.
    """
    token = token.rstrip("?!.,;:")
    if not token or _CONTRACTION.fullmatch(token):
        return False
    if any(ch.isdigit() for ch in token) or any(not ch.isalnum() for ch in token):
        return True
    return any(ch.isupper() for ch in token[1:])


def _password_value(text: str, start: int, *, verb: bool, strong: bool) -> tuple[int, int] | None:
    """Span of the password value that starts at `start`, or None when there is none.

    After a strong cue ("password:") any token is the value. After a weak cue the token must
    look like a secret, or be quoted; a plain lower-case word is taken only after "is"/"was"
    and only when it is not a word that describes the password ("is wrong", "is blocked").
    """
    quoted = _QUOTED.match(text, start)
    if quoted:
        return quoted.start(2), quoted.end(2)
    token = _TOKEN.match(text, start)
    if token is None:
        return None
    s, e = token.span()
    value = token.group()
    trailing = _TRAILING_PUNCT.search(value)
    if trailing and (e >= len(text) or text[e].isspace()):
        e -= len(trailing.group())
        value = text[s:e]
    if not any(ch.isalnum() for ch in value):
        return None
    if strong:
        return s, e
    if value.isdigit():
        return (s, e) if len(value) >= _PASSCODE_MIN_DIGITS else None
    if _looks_like_secret(value):
        return s, e
    if verb and value.isalpha() and value.lower() not in _DESCRIPTIVE_WORDS and not _DESCRIPTIVE_SUFFIX.search(value):
        return s, e
    return None


def _passwords(text: str) -> Iterator[PiiSpan]:
    for match in _PASSWORD_STRONG.finditer(text):
        span = _password_value(text, match.end(), verb=True, strong=True)
        if span:
            yield PiiSpan(span[0], span[1], PiiKind.PASSWORD)
    for match in _PASSWORD_WEAK.finditer(text):
        span = _password_value(text, match.end(), verb=match.group("verb") is not None, strong=False)
        if span:
            yield PiiSpan(span[0], span[1], PiiKind.PASSWORD)


def _shannon_bits(value: str) -> float:
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _char_class(ch: str) -> int:
    if ch.isupper():
        return 0
    if ch.islower():
        return 1
    if ch.isdigit():
        return 2
    return 3


def _is_random_token(value: str) -> bool:
    """Heuristic: a mixed-case alphanumeric token that reads as random, not as words."""
    core = value.rstrip("=")
    if len(core) < _ENTROPY_MIN_CHARS or _UUID.fullmatch(core):
        return False
    if not (any(c.isupper() for c in core) and any(c.islower() for c in core) and any(c.isdigit() for c in core)):
        return False
    switches = sum(_char_class(a) != _char_class(b) for a, b in zip(core, core[1:], strict=False))
    return _shannon_bits(core) >= _ENTROPY_MIN_BITS and switches / (len(core) - 1) >= _ENTROPY_MIN_SWITCH_RATE


def _cue_value_ok(value: str, *, separated: bool) -> bool:
    """A value after "api key"/"token"/"secret": long, with letters and digits, not a path.

    A UUID counts only after an explicit separator ("client secret: <uuid>"); elsewhere UUIDs
    are record ids, which are not secret and are useful in evidence.
    """
    core = value.rstrip("=")
    if len(core) < 16 or (_UUID.fullmatch(core) and not separated):
        return False
    if not (any(c.isdigit() for c in core) and any(c.isalpha() for c in core)):
        return False
    return not any(_PLAIN_WORD_SEGMENT.fullmatch(seg) for seg in re.split(r"[/.]", core))


def _api_keys(text: str) -> Iterator[PiiSpan]:
    for match in _API_KEY_PREFIXED.finditer(text):
        yield PiiSpan(match.start(), match.end(), PiiKind.API_KEY)
    for match in _BEARER.finditer(text):
        if _cue_value_ok(match.group("value"), separated=False):
            yield PiiSpan(match.start("value"), match.end("value"), PiiKind.API_KEY)
    for match in _API_KEY_CUE.finditer(text):
        if _cue_value_ok(match.group("value"), separated=match.group("sep") is not None):
            yield PiiSpan(match.start("value"), match.end("value"), PiiKind.API_KEY)
    for match in _TOKEN_RUN.finditer(text):
        run = match.group()
        if "/" in run:
            segments = run.split("/")
            if not any(_PLAIN_WORD_SEGMENT.fullmatch(seg) for seg in segments) and _is_random_token(run):
                yield PiiSpan(match.start(), match.end(), PiiKind.API_KEY)
                continue
            offset = match.start()
            for seg in segments:
                if _is_random_token(seg):
                    yield PiiSpan(offset, offset + len(seg), PiiKind.API_KEY)
                offset += len(seg) + 1
        elif _is_random_token(run):
            yield PiiSpan(match.start(), match.end(), PiiKind.API_KEY)


def _addresses(text: str) -> Iterator[PiiSpan]:
    """Best-effort street addresses; precision matters more than recall here (see REPORT.md)."""
    for match in _ADDRESS_EN_LOWER.finditer(text):
        if not any(word in _PROSE_WORDS for word in match.group("name").split()):
            yield PiiSpan(match.start(), match.end(), PiiKind.ADDRESS)
    for pattern in _ADDRESS_PATTERNS:
        for match in pattern.finditer(text):
            end = match.end()
            if text[match.start() : end].endswith(".") and (end >= len(text) or text[end].isspace()):
                # "Oak St." keeps its dot, but a sentence-final dot after a full word is punctuation
                if not re.search(
                    r"\b(?:St|Ave|Rd|Blvd|Ln|Dr|Ct|Pl|Ter|Pkwy|Cir|Hwy|Sq|Trl|Cres|str|av)\.$",
                    text[match.start() : end],
                ):
                    end -= 1
            yield PiiSpan(match.start(), end, PiiKind.ADDRESS)


_DETECTORS: Final = (_emails, _api_keys, _ibans, _cards, _accounts, _phones, _passwords, _pins_and_codes, _addresses)


# ============================================================================================
# public API
# ============================================================================================


def _merge(spans: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Union of overlapping spans, each labelled with the highest-priority kind it contains."""
    ordered = sorted((s for s in spans if s.end > s.start), key=lambda s: (s.start, -s.end))
    merged: list[PiiSpan] = []
    for span in ordered:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            kind = last.kind if _RANK[last.kind] <= _RANK[span.kind] else span.kind
            merged[-1] = PiiSpan(last.start, max(last.end, span.end), kind)
        else:
            merged.append(span)
    return merged


def _chunks(length: int) -> Iterator[tuple[int, int]]:
    if length <= CHUNK_CHARS:
        yield 0, length
        return
    step = CHUNK_CHARS - CHUNK_OVERLAP
    start = 0
    while True:
        end = min(length, start + CHUNK_CHARS)
        yield start, end
        if end == length:
            return
        start += step


# Kinds whose value, once found after a cue, is masked wherever else it recurs in the same text
# ("The PIN is 4821 or 7730. Try 4821 first.").
_PROPAGATED_KINDS: Final = frozenset({PiiKind.PIN, PiiKind.CODE, PiiKind.ACCOUNT, PiiKind.PASSWORD})
# characters: shortest value propagated; shorter ones (a 3-digit CVV) recur by chance too often.
_PROPAGATE_MIN_CHARS: Final = 4
# Whole tokens only (look-behind/-ahead): a long run is rejected in one step, never rescanned.
_PROPAGATE_TOKEN: Final = re.compile(
    r"(?<![^\s\"'“”‘’()\[\]<>,;])[^\s\"'“”‘’()\[\]<>,;]{4,64}+(?![^\s\"'“”‘’()\[\]<>,;])"
)


def _repeats(text: str, spans: list[PiiSpan]) -> Iterator[PiiSpan]:
    """Other occurrences of secret values already found; one linear scan over the text."""
    values: dict[str, PiiKind] = {}
    for span in spans:
        value = text[span.start : span.end]
        if span.kind in _PROPAGATED_KINDS and len(value) >= _PROPAGATE_MIN_CHARS and " " not in value:
            values.setdefault(value, span.kind)
    if not values:
        return
    for match in _PROPAGATE_TOKEN.finditer(text):
        for token in (match.group(), match.group().rstrip(".!?:")):
            kind = values.get(token)
            if kind is not None:
                yield PiiSpan(match.start(), match.start() + len(token), kind)
                break


@functools.lru_cache(maxsize=_CACHE_ENTRIES)
def _detect_cached(text: str) -> tuple[PiiSpan, ...]:
    found: list[PiiSpan] = []
    for chunk_start, chunk_end in _chunks(len(text)):
        chunk = text[chunk_start:chunk_end]
        for detector in _DETECTORS:
            for span in detector(chunk):
                found.append(PiiSpan(span.start + chunk_start, span.end + chunk_start, span.kind))
    found.extend(_repeats(text, found))
    merged = _merge(found)
    if merged:
        logger.debug(
            "pii: %d span(s) in %d chars: %s", len(merged), len(text), dict(Counter(span.kind.value for span in merged))
        )
    return tuple(merged)


def clear_detection_cache() -> None:
    """Forget cached detections (for benchmarks and tests; never needed for correctness)."""
    _detect_cached.cache_clear()


def detect_pii(text: str) -> list[PiiSpan]:
    """Personal-data spans in `text`, sorted and non-overlapping.

    Pure function of `text` (results are cached per text). Offsets index the string as given,
    so they can be stored next to the verbatim message or used to highlight it.
    """
    return list(_detect_cached(text))


def mask_span(text: str, start: int, end: int) -> str:
    """``text[start:end]`` with personal data replaced by markers, judged on the whole `text`.

    Detection runs on the full text, so an entity cut by the quote boundary (a phone number
    half inside the quote) is still recognised and its visible part masked.
    """
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"span [{start}, {end}) is outside a text of {len(text)} characters")
    parts: list[str] = []
    cursor = start
    for span in _detect_cached(text):
        if span.end <= start:
            continue
        if span.start >= end:
            break
        s, e = max(span.start, start), min(span.end, end)
        parts.append(text[cursor:s])
        parts.append(marker(span.kind))
        cursor = e
    parts.append(text[cursor:end])
    return "".join(parts)


def mask(text: str) -> str:
    """`text` with every detected personal-data span replaced by its marker, e.g. ``[email]``."""
    return mask_span(text, 0, len(text))


def source_span_of_shown(text: str, fragment: str, *, masked: bool = True) -> tuple[int, int] | None:
    """Offsets in `text` of the verbatim source of `fragment`, a piece of `text` as it was shown.

    "Shown" is `text` with personal data masked (when `masked`) and every whitespace run
    collapsed to one space, which is what an LLM prompt carries: the model quotes ``[email]``
    where the customer wrote an address, and the stored quote must still be the customer's own
    words. Returns None when `fragment` is not part of the shown text. Linear in ``len(text)``.
    """
    pieces: list[tuple[str, int, int]] = []  # (shown text, source start, source end)
    cursor = 0
    for span in _detect_cached(text) if masked else ():
        pieces.extend((ch, i, i + 1) for i, ch in enumerate(text[cursor : span.start], start=cursor))
        pieces.append((marker(span.kind), span.start, span.end))
        cursor = span.end
    pieces.extend((ch, i, i + 1) for i, ch in enumerate(text[cursor:], start=cursor))

    shown: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pending_space: tuple[int, int] | None = None
    for piece, start, end in pieces:
        if piece.isspace():
            pending_space = (pending_space[0], end) if pending_space else (start, end)
            continue
        if pending_space and shown:
            shown.append(" ")
            starts.append(pending_space[0])
            ends.append(pending_space[1])
        pending_space = None
        for ch in piece:  # a marker maps, character by character, to its whole source span
            shown.append(ch)
            starts.append(start)
            ends.append(end)
    wanted = " ".join(fragment.split())
    at = "".join(shown).find(wanted) if wanted else -1
    if at < 0:
        return None
    return starts[at], ends[at + len(wanted) - 1]


def masking_enabled() -> bool:
    """Whether views, exports and prompts mask personal data (setting ``insight.mask_personal_data``, on by default)."""
    return get_settings().insight.mask_personal_data


@overload
def mask_for_display(text: str) -> str: ...
@overload
def mask_for_display(text: None) -> None: ...
def mask_for_display(text: str | None) -> str | None:
    """`text` as Threadline shows, writes or sends it: personal data masked unless masking is configured off.

    The one function every view (CLI, report, API serializers, dashboard filter) and every
    prompt builder calls, so a stored verbatim text is never shown unmasked by accident.
    """
    if text is None or not masking_enabled():
        return text
    return mask(text)


def mask_span_for_display(text: str, start: int, end: int) -> str:
    """``text[start:end]`` as shown (see :func:`mask_for_display`), judged on the whole `text`."""
    if not masking_enabled():
        return text[start:end]
    return mask_span(text, start, end)

"""Scrub personal data from model-written text (summaries), after the model was told not to.

The prompt asks for no names, e-mails, phone numbers or order numbers; these regexes
are the second line of defence, because a model (or an injected conversation) may not
comply. Verbatim quotes are *not* scrubbed here: they are evidence and must match the
source exactly; the integrator decides where quotes may be shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_NAME_CHARS = 2  # characters: a one-letter "name" would redact every article "a"

_PATTERNS = (
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail addresses
    re.compile(r"https?://\S+"),  # links may carry ids and tokens
    re.compile(r"(?<!\w)\+?\d[\d\s().-]{6,}\d(?!\w)"),  # phone, card, account numbers
    re.compile(
        r"\b(?:order|invoice|ticket|account|acct|booking|reference|ref|case|iban)"
        r"(?:\s+(?:no\.?|number|#|id))?(?:\s*[:#]\s*|\s+)(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b",
        re.IGNORECASE,
    ),  # labelled identifiers: "order #A1234", "booking ref XK9Q2"
    re.compile(r"#\s?\d{3,}"),  # "#12345"
    re.compile(r"\b[A-Z]{1,4}-?\d{4,}\b"),  # codes like "AB-123456"
    re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?"),  # titles
    re.compile(r"(?i:\bmy name is|\bthis is|\bi am|\bi'm)\s+[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?"),
)


def scrub(text: str, known_names: Iterable[str] = ()) -> str:
    """Replace e-mails, numbers, labelled ids and (known or introduced) names with a marker."""
    result = text
    for name in sorted({n.strip() for n in known_names if n}, key=len, reverse=True):
        for part in {name, *name.split()}:
            if len(part) >= MIN_NAME_CHARS:
                result = re.sub(rf"\b{re.escape(part)}\b", REDACTED, result, flags=re.IGNORECASE)
    for pattern in _PATTERNS:
        result = pattern.sub(REDACTED, result)
    return result

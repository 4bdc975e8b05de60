"""Case-insensitive regular-expression search, fast on ASCII text.

Python's ``re`` skips its literal-prefix scan when a pattern ignores case, so an
``IGNORECASE`` search runs several times slower than a case-sensitive one. On ASCII text,
a case-insensitive search by a pattern whose literals are written in lowercase equals a
case-sensitive search of the lowercased text (lowercasing ASCII keeps every offset).
Callers search ASCII text lowercased with :func:`ascii_variant` of their pattern, other
text with the pattern itself, and test their patterns with :func:`has_uppercase_literal`.
"""

from __future__ import annotations

import re

__all__ = ["ascii_variant", "has_uppercase_literal"]

_UPPERCASE_LITERAL = re.compile(r"(?<!\\)[A-Z]")


def ascii_variant(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The pattern to search lowercased ASCII text with: the same pattern without ``IGNORECASE``."""
    if not pattern.flags & re.IGNORECASE:
        return pattern
    return re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE)


def has_uppercase_literal(pattern: re.Pattern[str]) -> bool:
    """True when the pattern holds an upper-case letter that is not an escape (``\\S``, ``\\W``...).

    Such a literal never matches lowercased text, so the ASCII fast path would miss it.
    """
    return _UPPERCASE_LITERAL.search(pattern.pattern) is not None

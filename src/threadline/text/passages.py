"""Split a Markdown article into passages at its headings: what coverage matches a theme against.

A passage is one heading's section (the heading line and the text up to the next heading of
any level), with the path of headings above it, so "Billing > Invoices > Recurring" stays
attached to the text it titles. A section longer than the limit is cut at paragraph breaks
(then at a space) into consecutive passages with the same heading path. Headings inside
fenced code blocks are text. Offsets index the article's text, so a passage can always be
shown in place. One pass over the lines: linear in the text's length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADING = re.compile(r"(#{1,6})[ \t]+(.*?)[ \t#]*$")  # ATX heading, closing hashes dropped
FENCE = re.compile(r"(```|~~~)")
MAX_HEADING_LEVELS = 6  # Markdown's deepest ATX heading


@dataclass(frozen=True)
class TextPassage:
    """One section (or part of a long section) of an article: `text == article[start:end]`."""

    heading_path: tuple[str, ...]
    text: str
    start: int
    end: int


def _cut(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """[start, end) as spans of at most `max_chars`, cut at the last paragraph break, else space, in reach."""
    spans: list[tuple[int, int]] = []
    while end - start > max_chars:
        limit = start + max_chars
        cut = text.rfind("\n\n", start + 1, limit)
        if cut <= start:
            cut = text.rfind(" ", start + 1, limit)
        if cut <= start:
            cut = limit
        spans.append((start, cut))
        start = cut
    spans.append((start, end))
    return spans


def split_passages(text: str, max_chars: int) -> list[TextPassage]:
    """The passages of Markdown `text`, in order; whitespace-only sections and parts are left out."""
    sections: list[tuple[tuple[str, ...], int, int]] = []
    path: list[tuple[int, str]] = []  # (level, heading) of the open headings
    current_path: tuple[str, ...] = ()
    section_start = 0
    offset = 0
    in_fence = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if FENCE.match(stripped):
            in_fence = not in_fence
        match = None if in_fence else HEADING.fullmatch(stripped)
        if match is not None and len(line) - len(line.lstrip()) < 4:  # 4 spaces of indent is a code block
            sections.append((current_path, section_start, offset))
            level = len(match.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, match.group(2)))
            current_path = tuple(heading for _, heading in path)
            section_start = offset
        offset += len(line)
    sections.append((current_path, section_start, len(text)))
    passages: list[TextPassage] = []
    for heading_path, start, end in sections:
        body = text[start:end]
        heading_only = HEADING.fullmatch(body.strip()) is not None
        if not body.strip() or heading_only:
            continue
        for part_start, part_end in _cut(text, start, end, max_chars):
            part = text[part_start:part_end]
            if part.strip():
                passages.append(TextPassage(heading_path, part, part_start, part_end))
    return passages

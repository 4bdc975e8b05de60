"""HTML pages -> Markdown main text, with trafilatura.

Why trafilatura: documentation and help-center pages wrap each article in navigation,
headers, footers, cookie banners and "related articles" lists; embedding those would make
every page look alike. trafilatura is a maintained, widely used main-content extractor
(boilerplate removal tuned on real sites, no JavaScript executed) that can emit Markdown
with the page's headings kept as `#` lines, which is exactly what our passage splitter
needs. Nothing from the page ever executes: the HTML is only parsed (lxml).
"""

from __future__ import annotations

import re

import trafilatura
from lxml import etree
from lxml import html as lxml_html

_TITLE = re.compile(r"<title[^>]*>([^<]{1,500})</title>", re.IGNORECASE)  # bounded: linear, no backtracking
_FIRST_HEADING = re.compile(r"^#{1,2}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def html_to_markdown(html: str) -> tuple[str | None, str]:
    """(title, Markdown main text) of an HTML page; text is "" when the page has no main content."""
    text = (
        trafilatura.extract(
            html,
            output_format="markdown",
            include_formatting=True,
            include_links=False,
            include_images=False,
            include_comments=False,
            include_tables=True,
            favor_recall=True,
        )
        or ""
    )
    title: str | None = None
    metadata = trafilatura.extract_metadata(html)
    if metadata is not None and metadata.title:
        title = str(metadata.title).strip()
    if not title:
        match = _TITLE.search(html)
        title = match.group(1).strip() if match else None
    return title, text


def markdown_title(text: str) -> str | None:
    """The first level-1 or level-2 heading of Markdown `text`, if any."""
    match = _FIRST_HEADING.search(text)
    return match.group(1).strip() if match else None


_BLOCKS = frozenset({"p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


def fragment_to_markdown(fragment: str) -> str:
    """Markdown of an article body that is already only the article (a help center's HTML body).

    trafilatura's boilerplate removal is for whole pages; on a bare article body it may drop
    short sections. Here every heading becomes a `#` line and every block its text, in order.
    """
    if not fragment.strip():
        return ""
    try:
        root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    lines: list[str] = []
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _HEADINGS:
            heading = " ".join(element.text_content().split())
            if heading:
                lines.append("#" * _HEADINGS[tag] + " " + heading)
        elif tag in _BLOCKS and not any(
            isinstance(a.tag, str) and (a.tag in _BLOCKS or a.tag in _HEADINGS) for a in element.iterancestors()
        ):
            block = " ".join(element.text_content().split())
            if block:
                lines.append(("- " if tag == "li" else "") + block)
    if not lines:  # no block markup at all: the text as one paragraph
        text = " ".join(root.text_content().split())
        return text
    return "\n\n".join(lines) + "\n"

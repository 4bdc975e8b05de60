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

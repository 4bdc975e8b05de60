"""Tracker item bodies: Markdown (GitHub, Linear) and Atlassian Document Format (Jira), with Threadline's owned block.

Every body carries a hidden marker with the story identity (found again after a crash) and
one block Threadline owns, delimited and sealed with the SHA-256 of its own text:

    <!-- threadline:story=42 -->
    <!-- threadline:begin -->
    ...title facts, problem, evidence, link...
    <!-- threadline:end sha256=<hex of the text between begin and end> -->

A person may write anywhere outside the block; an update replaces only the block, and only
when its text still hashes to its seal (otherwise a person edited it: the update is skipped).
Jira has no hidden text, so its marker and seal are small visible paragraphs
("threadline-story-42", "Threadline · sha256 ...") around the owned nodes, and the hash is
over the block's text and link targets (robust to Jira adding attributes to nodes).

All of it is linear in the size of the body: one regex search with fixed delimiters.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from threadline.exporters.base import TrackerItem

BEGIN = "<!-- threadline:begin -->"
END_PREFIX = "<!-- threadline:end sha256="
_MD_BLOCK = re.compile(r"<!-- threadline:begin -->\n(.*?)\n<!-- threadline:end sha256=([0-9a-f]{64}) -->", re.DOTALL)
JIRA_MARKER_PREFIX = "threadline-story-"  # Jira's `text ~` matches it as words: threadline, story, <id>
JIRA_SEAL_PREFIX = "Threadline · sha256 "
_JIRA_SEAL = re.compile(r"^Threadline · sha256 ([0-9a-f]{64})$")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")


def markdown_marker(marker: str) -> str:
    """The hidden marker of a Markdown body: `<!-- threadline:story=<identity> -->`."""
    return f"<!-- threadline:story={marker} -->"


def jira_marker(marker: str) -> str:
    """The visible marker of a Jira description, found by JQL `text ~ "threadline-story-<identity>"`."""
    return f"{JIRA_MARKER_PREFIX}{marker}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _escape(text: str) -> str:
    """Markdown-inert text: customer words never become markup, links, HTML or mentions."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split())).replace("@", "@\u200b")


def markdown_block(item: TrackerItem) -> str:
    """The text of Threadline's block (between the delimiters) for `item`."""
    lines = [f"**{_escape(item.title)}**", "", _escape(item.problem), ""]
    lines += [f"- **{_escape(label)}:** {_escape(value)}" for label, value in item.facts.items()]
    if item.evidence:
        lines += ["", "**Evidence**", ""]
        for quote in item.evidence:
            source = f" ([conversation {_escape(quote.conversation)}]({quote.url}))" if quote.url else ""
            lines.append(f"> {_escape(quote.quote)}{source}")
            lines.append("")
    if item.link:
        lines += ["", f"[The story in Threadline]({item.link})"]
    return "\n".join(lines).strip()


def sealed_markdown_block(item: TrackerItem) -> tuple[str, str]:
    """(the delimited, sealed block, its hash)."""
    text = markdown_block(item)
    digest = sha256(text)
    return f"{BEGIN}\n{text}\n{END_PREFIX}{digest} -->", digest


def markdown_body(item: TrackerItem) -> tuple[str, str]:
    """(a new item's whole body: marker + sealed block, the block's hash)."""
    block, digest = sealed_markdown_block(item)
    return f"{markdown_marker(item.marker)}\n{block}\n", digest


@dataclass(frozen=True)
class Replaced:
    """The outcome of rewriting a body's block: the new body, or None when a person edited (or removed) the block."""

    body: str | None
    digest: str | None
    unchanged: bool = False  # the block already says exactly this


def replace_markdown_block(body: str | None, item: TrackerItem) -> Replaced:
    """`body` with its block rewritten for `item`, text outside the block untouched."""
    found = _MD_BLOCK.search(body or "")
    if found is None or sha256(found.group(1)) != found.group(2):
        return Replaced(None, None)
    block, digest = sealed_markdown_block(item)
    if digest == found.group(2):
        return Replaced(body, digest, unchanged=True)
    text = body or ""
    return Replaced(text[: found.start()] + block + text[found.end() :], digest)


def adopt_markdown_body(body: str | None, item: TrackerItem) -> Replaced:
    """An existing item's body taken over by `export --link`: its block rewritten, or marker and block appended.

    A person's text is kept as it is; when the item has no block of Threadline's yet, the
    marker (if absent) and a sealed block go after it. An edited block is left alone (None).
    """
    text = body or ""
    if _MD_BLOCK.search(text) is not None:
        replaced = replace_markdown_block(text, item)
        if replaced.body is None or has_markdown_marker(replaced.body, item.marker):
            return replaced
        return Replaced(f"{markdown_marker(item.marker)}\n{replaced.body}", replaced.digest)
    block, digest = sealed_markdown_block(item)
    marker = "" if has_markdown_marker(text, item.marker) else markdown_marker(item.marker) + "\n"
    prefix = text.rstrip() + "\n\n" if text.strip() else ""
    return Replaced(f"{prefix}{marker}{block}\n", digest)


def has_markdown_marker(body: str | None, marker: str) -> bool:
    """Does `body` carry exactly this story's marker (not story 12's when looking for 1)?"""
    return markdown_marker(marker) in (body or "")


# --- Atlassian Document Format ----------------------------------------------------------------


def _text(value: str, *marks: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def _link(href: str) -> dict[str, Any]:
    return {"type": "link", "attrs": {"href": href}}


def adf_owned_nodes(item: TrackerItem) -> list[dict[str, Any]]:
    """The ADF nodes of Threadline's block (between marker and seal)."""
    nodes: list[dict[str, Any]] = [
        {"type": "heading", "attrs": {"level": 3}, "content": [_text(" ".join(item.title.split()) or "-")]},
        _paragraph(_text(" ".join(item.problem.split()) or "-")),
    ]
    if item.facts:
        nodes.append(
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [_paragraph(_text(f"{label}: ", {"type": "strong"}), _text(value or "-"))],
                    }
                    for label, value in item.facts.items()
                ],
            }
        )
    if item.evidence:
        nodes.append({"type": "heading", "attrs": {"level": 4}, "content": [_text("Evidence")]})
        for quote in item.evidence:
            content = [_text(" ".join(quote.quote.split()) or "-")]
            if quote.url:
                content += [_text(" "), _text(f"conversation {quote.conversation}", _link(quote.url))]
            nodes.append({"type": "blockquote", "content": [_paragraph(*content)]})
    if item.link:
        nodes.append(_paragraph(_text("The story in Threadline", _link(item.link))))
    return nodes


def adf_text(nodes: list[dict[str, Any]]) -> str:
    """The text and link targets of ADF nodes, in order: what the seal hashes (not Jira's node attributes)."""
    parts: list[str] = []
    stack: list[Any] = list(reversed(nodes))
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "text":
            parts.append(str(node.get("text", "")))
            for mark in node.get("marks") or []:
                if isinstance(mark, dict) and mark.get("type") == "link":
                    parts.append(f"<{(mark.get('attrs') or {}).get('href', '')}>")
        parts.append(f"|{node.get('type')}")
        stack.extend(reversed(node.get("content") or []))
    return "".join(parts)


def _seal(digest: str) -> dict[str, Any]:
    return _paragraph(_text(f"{JIRA_SEAL_PREFIX}{digest}", {"type": "subsup", "attrs": {"type": "sub"}}))


def _marker_paragraph(marker: str) -> dict[str, Any]:
    return _paragraph(_text(jira_marker(marker), {"type": "subsup", "attrs": {"type": "sub"}}))


def adf_document(item: TrackerItem) -> tuple[dict[str, Any], str]:
    """(a new Jira description: marker, owned nodes, seal; the block's hash)."""
    owned = adf_owned_nodes(item)
    digest = sha256(adf_text(owned))
    return {"type": "doc", "version": 1, "content": [_marker_paragraph(item.marker), *owned, _seal(digest)]}, digest


def _plain(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    if node.get("type") == "text":
        return str(node.get("text", ""))
    return "".join(_plain(child) for child in node.get("content") or [])


def adf_has_marker(document: Any, marker: str) -> bool:
    """Does the Jira description carry exactly this story's marker paragraph?"""
    content = document.get("content") if isinstance(document, dict) else None
    return any(_plain(node).strip() == jira_marker(marker) for node in content or [])


def replace_adf_block(document: Any, item: TrackerItem) -> tuple[dict[str, Any] | None, str | None, bool]:
    """(the description with the owned nodes rewritten, the new hash, unchanged) or (None, None, False) when edited."""
    content = document.get("content") if isinstance(document, dict) else None
    if not isinstance(content, list):
        return None, None, False
    start = next((i for i, n in enumerate(content) if _plain(n).strip() == jira_marker(item.marker)), None)
    if start is None:
        return None, None, False
    for end in range(start + 1, len(content)):
        sealed = _JIRA_SEAL.match(_plain(content[end]).strip())
        if sealed is not None:
            break
    else:
        return None, None, False
    if sha256(adf_text(content[start + 1 : end])) != sealed.group(1):
        return None, None, False
    owned = adf_owned_nodes(item)
    digest = sha256(adf_text(owned))
    if digest == sealed.group(1):
        return dict(document), digest, True
    new_content = [*content[: start + 1], *owned, _seal(digest), *content[end + 1 :]]
    return {**document, "content": new_content}, digest, False


def adopt_adf_document(document: Any, item: TrackerItem) -> tuple[dict[str, Any] | None, str | None, bool]:
    """`replace_adf_block` for an item taken over by `export --link`: marker, block and seal appended when absent."""
    if adf_has_marker(document, item.marker):
        return replace_adf_block(document, item)
    content = document.get("content") if isinstance(document, dict) else None
    owned = adf_owned_nodes(item)
    digest = sha256(adf_text(owned))
    base = document if isinstance(document, dict) and isinstance(content, list) else {"type": "doc", "version": 1}
    new_content = [*(content or []), _marker_paragraph(item.marker), *owned, _seal(digest)]
    return {**base, "content": new_content}, digest, False


def adf_comment(text: str) -> dict[str, Any]:
    """A Jira comment body: one paragraph per line of `text`."""
    lines = [line for line in text.splitlines() if line.strip()] or ["-"]
    return {"type": "doc", "version": 1, "content": [_paragraph(_text(line)) for line in lines]}


def canonical(value: Any) -> str:
    """A stable JSON text (tests compare documents with it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))

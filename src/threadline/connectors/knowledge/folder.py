"""A folder of Markdown and HTML files as a knowledge source (`threadline knowledge add folder`).

Every sync walks the folder (sorted, so batches and limits are reproducible): Markdown is
taken as it is, HTML is reduced to its main text (`html.html_to_markdown`). The external id is
the file's path relative to the folder; the sink skips files whose content hash is unchanged.
A Markdown file may start with YAML-style front matter (`---` lines around `key: value`
lines): it is stripped from the text, its `updated:` (else `published:` or `date:`) line is the
article's date, its `title:` the title when the text has no heading. Without such a line the
article has no date: a file's modification time says when it was checked out, not written.
Files that disappeared are marked removed, unless the walk stopped at `knowledge.max_pages`
(then what was not reached is not known to be gone). Oversized files and other file types
are skipped with a reason; unreadable files become dead letters and are retried next sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urljoin

from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.config import get_settings
from threadline.connectors.base import Connector, ConnectorError, DeadLetter, SyncBatch, SyncSink
from threadline.connectors.knowledge.common import (
    FAILED_KEY,
    KNOWLEDGE_STAGE,
    KnowledgeReport,
    knowledge_sink,
    parse_date,
)
from threadline.connectors.knowledge.html import html_to_markdown, markdown_title
from threadline.connectors.records import ArticleRecord

logger = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
FRONT_MATTER_FENCE = "---"  # the line that opens and closes front matter (Jekyll, Hugo, MkDocs)
MAX_FRONT_MATTER_LINES = 50  # lines looked at for the closing fence: front matter is a handful of keys
DATE_KEYS = ("updated", "last_updated", "published", "date")  # front-matter keys of the article's date, first wins


class FolderConfig(BaseModel):
    """Where the files are (an absolute path is stored) and, optionally, where people read them."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Folder of Markdown (.md) and HTML (.html) files, read recursively.")
    base_url: str | None = Field(
        default=None, description="URL the folder is published under: an article's URL is this + its relative path."
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(Path(value).expanduser().resolve())


def _files(root: Path) -> Iterator[Path]:
    """Regular files under `root`, sorted by relative path; symbolic links are not followed out of the folder."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


@dataclass(frozen=True)
class FrontMatter:
    """What a Markdown file's front matter says (`fields`, lower-case keys) and the text after it (`body`)."""

    fields: dict[str, str]
    body: str

    @property
    def updated_at(self) -> datetime | None:
        """The article's date: the first of `DATE_KEYS` present that parses (a bare date is midnight UTC)."""
        for key in DATE_KEYS:
            if key in self.fields:
                parsed = parse_date(self.fields[key])
                if parsed is not None:
                    return parsed
        return None


def front_matter(text: str) -> FrontMatter:
    """Split YAML-style front matter off Markdown `text` (no front matter: empty fields, the text unchanged).

    Only flat `key: value` lines are read (enough for dates and titles; nested YAML is ignored),
    and only when the first line is the fence and a closing fence follows within
    `MAX_FRONT_MATTER_LINES` lines: a thematic break further down is not front matter.
    """
    lines = text.lstrip("\ufeff").split("\n", MAX_FRONT_MATTER_LINES + 1)
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        return FrontMatter({}, text)
    for index, line in enumerate(lines[1 : MAX_FRONT_MATTER_LINES + 1], start=1):
        if line.strip() == FRONT_MATTER_FENCE:
            fields: dict[str, str] = {}
            for entry in lines[1:index]:
                key, colon, value = entry.partition(":")
                if colon and key.strip() and not key.startswith((" ", "\t")):
                    fields.setdefault(key.strip().lower(), value.strip())
            body = "\n".join(lines[index + 1 :]) if index + 1 < len(lines) else ""
            return FrontMatter(fields, body.lstrip("\n"))
    return FrontMatter({}, text)


def _record(path: Path, relative: str, base_url: str | None) -> ArticleRecord:
    """The article of one file (raises OSError / UnicodeDecodeError for an unreadable one)."""
    raw = path.read_bytes().decode("utf-8")
    updated: datetime | None = None
    if path.suffix.lower() in HTML_SUFFIXES:
        title, text = html_to_markdown(raw)
    else:
        matter = front_matter(raw)
        text, updated = matter.body, matter.updated_at
        title = markdown_title(text) or matter.fields.get("title", "").strip("\"'").strip() or None
        if any(key in matter.fields for key in DATE_KEYS) and updated is None:
            logger.info("knowledge file %s: its front-matter date is not an ISO date; no date kept", relative)
    url = urljoin(base_url.rstrip("/") + "/", quote(relative)) if base_url else None
    return ArticleRecord(external_id=relative, title=title or path.stem, text=text, url=url, updated_at=updated)


async def sync(config: FolderConfig, sink: SyncSink[ArticleRecord], since: int | None) -> KnowledgeReport:
    """Read the folder; commit articles in batches; mark files that disappeared removed."""
    del since  # a folder is read whole each time: unchanged files cost a hash
    store = knowledge_sink(sink)
    settings = get_settings().knowledge
    root = Path(config.path)
    report = KnowledgeReport()
    failed: dict[str, int] = dict(store.load_state().get(FAILED_KEY, {}))
    still_failed: dict[str, int] = {}
    seen: set[str] = set()
    complete = True
    batch: SyncBatch[ArticleRecord] = SyncBatch()
    if not root.is_dir():
        raise ConnectorError(f"knowledge folder {root} does not exist")
    for path in _files(root):
        relative = path.relative_to(root).as_posix()
        suffix = path.suffix.lower()
        if suffix not in MARKDOWN_SUFFIXES | HTML_SUFFIXES:
            report.skip("unsupported_type")
            continue
        if len(seen) >= settings.max_pages:
            complete = False
            report.skip("max_pages")
            break
        seen.add(relative)
        report.seen += 1
        if path.stat().st_size > settings.max_page_bytes:
            report.skip("too_large")
            continue
        try:
            batch.records.append(_record(path, relative, config.base_url))
        except (OSError, UnicodeDecodeError) as exc:
            attempts = failed.get(relative, 0) + 1
            still_failed[relative] = attempts
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else (exc.strerror or "unreadable")
            batch.dead_letters.append(
                DeadLetter(relative, type(exc).__name__, f"cannot read the file: {reason}", attempts, KNOWLEDGE_STAGE)
            )
            report.dead_lettered += 1
        if len(batch.records) >= settings.articles_per_commit:
            batch.state = {FAILED_KEY: {**failed, **still_failed}}
            store.commit(batch)
            batch = SyncBatch()
    if complete:
        gone = store.active_ids() - seen
        batch.deleted = {external_id: datetime.now(UTC) for external_id in sorted(gone)}
        report.removed = len(gone)
    batch.state = {FAILED_KEY: still_failed}
    store.commit(batch)
    return report


CONNECTOR: Connector[ArticleRecord] = Connector(
    kind="folder",
    label="Folder",
    description="a folder of Markdown and HTML files",
    record_type=ArticleRecord,
    config_model=FolderConfig,
    sync=sync,
)

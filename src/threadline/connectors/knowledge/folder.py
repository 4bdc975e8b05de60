"""A folder of Markdown and HTML files as a knowledge source (`threadline knowledge add folder`).

Every sync walks the folder (sorted, so batches and limits are reproducible): Markdown is
taken as it is, HTML is reduced to its main text (`html.html_to_markdown`). The external id is
the file's path relative to the folder; the sink skips files whose content hash is unchanged.
Files that disappeared are marked removed, unless the walk stopped at `knowledge.max_pages`
(then what was not reached is not known to be gone). Oversized files and other file types
are skipped with a reason; unreadable files become dead letters and are retried next sync.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urljoin

from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.config import get_settings
from threadline.connectors.base import Connector, ConnectorError, DeadLetter, SyncBatch, SyncSink
from threadline.connectors.knowledge.common import FAILED_KEY, KNOWLEDGE_STAGE, KnowledgeReport, knowledge_sink
from threadline.connectors.knowledge.html import html_to_markdown, markdown_title
from threadline.connectors.records import ArticleRecord

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})


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


def _record(path: Path, relative: str, base_url: str | None) -> ArticleRecord:
    """The article of one file (raises OSError / UnicodeDecodeError for an unreadable one)."""
    raw = path.read_bytes().decode("utf-8")
    if path.suffix.lower() in HTML_SUFFIXES:
        title, text = html_to_markdown(raw)
    else:
        text = raw
        title = markdown_title(raw)
    url = urljoin(base_url.rstrip("/") + "/", quote(relative)) if base_url else None
    updated = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
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

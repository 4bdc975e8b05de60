"""File connector: JSONL (one conversation per line) and CSV (one message per row) exports.

Its records arrive by `threadline import` (`importer.import_file`), not by a sync.
`CONNECTOR` is what the registry knows (entry point `threadline.connectors: file`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from threadline.connectors.base import Connector
from threadline.connectors.records import ConversationRecord


class FileSourceConfig(BaseModel):
    """File sources need no configuration: each import names its file."""

    model_config = ConfigDict(extra="forbid")


CONNECTOR: Connector[ConversationRecord] = Connector(
    kind="file",
    label="File import",
    description="conversations imported from JSONL or CSV files",
    record_type=ConversationRecord,
    config_model=FileSourceConfig,
)

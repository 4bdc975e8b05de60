"""The connector contract: a source kind, its typed configuration, and how it syncs into a sink.

A connector is one object (`Connector`) exported by one module of `threadline.connectors`
(or of a plugin) and registered under the entry-point group `threadline.connectors`. It
turns a remote API's records into the one record boundary (`ConversationRecord` for
conversations; later kinds bring their own record type) and hands them, batch by batch, to
a `SyncSink`, which commits each batch together with the sync state it covers. A connector
whose `sync` is None receives its records by `threadline import` (files).

Configuration is a pydantic model stored on the source (`sources.config`); it names the
environment variables that hold secrets, never the secrets themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from threadline.registry import Registry

CONNECTORS_GROUP = "threadline.connectors"

RecordT = TypeVar("RecordT")


class ConnectorError(Exception):
    """A remote call failed for good. Carries status, the provider's error code and the path only.

    Messages never contain a token or customer text, so they may be shown and stored.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        path: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.path = path
        self.attempts = attempts


class ConnectorAuthError(ConnectorError):
    """The token is missing, refused or lacks a scope; retrying cannot help."""


@dataclass(frozen=True)
class DeadLetter:
    """One item that failed for good in a sync (maps onto the `dead_letters` table)."""

    item: str
    error_class: str
    error_message: str
    attempts: int
    stage: str
    failed_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class SyncBatch(Generic[RecordT]):
    """What one commit writes, atomically: records, deletions, dead letters and the new state."""

    records: list[RecordT] = field(default_factory=list)
    deleted: dict[str, datetime] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class SyncSink(Protocol[RecordT]):
    """Where a sync writes. `commit` must be all-or-nothing (one transaction)."""

    def load_state(self) -> dict[str, Any]:
        """The last committed sync state ({} before the first sync)."""
        ...

    def stored_versions(self, external_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        """updated_at of the given records as stored (absent ids are not stored)."""
        ...

    def commit(self, batch: SyncBatch[RecordT]) -> None:
        """Write the batch and its state in one transaction."""
        ...


class SyncReport(Protocol):
    """What a sync did: integer counters that add up, dead letters, and the watermark reached."""

    dead_lettered: int
    watermark: int | None  # Unix seconds up to which the source is synced (None: not incremental)

    def counters(self) -> dict[str, int]:
        """Every counter of the report, by name."""
        ...


SyncFunction = Callable[[Any, "SyncSink[Any]", "int | None"], Awaitable[SyncReport]]


@dataclass(frozen=True)
class Connector(Generic[RecordT]):
    """A source kind: how it is configured and (for remote APIs) how it syncs.

    `sync(config, sink, since)` pulls what changed since the sink's watermark (or since
    `since`, Unix seconds) and commits it through `sink`; it opens one HTTP client for the
    sync and closes it. Raises `ConnectorAuthError` for a refused or missing token and
    `ConnectorError` when the sync as a whole cannot continue; single records that keep
    failing become dead letters instead.
    """

    kind: str
    label: str  # the product's name as a person writes it: "Intercom"
    description: str  # what one source of this kind is: "an Intercom workspace"
    record_type: type[RecordT]
    config_model: type[BaseModel]
    sync: SyncFunction | None = None

    @property
    def syncable(self) -> bool:
        return self.sync is not None


CONNECTORS: Registry[Connector[Any]] = Registry(
    CONNECTORS_GROUP, name_of=lambda connector: connector.kind, check=lambda obj: isinstance(obj, Connector)
)


def get_connector(kind: str) -> Connector[Any]:
    """The registered connector of `kind` (raises `threadline.registry.UnknownPlugin`)."""
    return CONNECTORS.get(kind)

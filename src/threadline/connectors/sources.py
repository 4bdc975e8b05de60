"""Sources: adding one of a registered kind with a validated configuration, and syncing it.

This is the one code path of `threadline sources add`, `threadline sync`, `run --sync` and the
API's sync job: the source's connector is found by its kind in the registry, its stored
configuration is validated by the connector's model, and its sync writes through a
`PostgresSink` (one transaction per batch, the watermark committed with the data).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.connectors.base import Connector, ConnectorError, SyncReport, get_connector
from threadline.connectors.records import ConversationRecord
from threadline.connectors.sink import PostgresSink
from threadline.connectors.store import get_or_create_source
from threadline.connectors.syncs import SyncRecord
from threadline.db.models import Source
from threadline.registry import UnknownPlugin


class SourceError(LookupError):
    """A source cannot be added or synced as asked; the message says why (never a secret)."""


def validated_config(connector: Connector[Any], values: dict[str, Any]) -> BaseModel:
    """`values` checked against the connector's configuration model (`SourceError` when invalid)."""
    try:
        return connector.config_model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise SourceError(f"invalid {connector.kind} configuration: {problems}") from None


def add_source(session: Session, kind: str, name: str, values: dict[str, Any]) -> Source:
    """Create the source `name` of `kind` (or reconfigure it when it exists with that kind)."""
    try:
        connector = get_connector(kind)
    except UnknownPlugin as exc:
        raise SourceError(str(exc)) from None
    if connector.record_type is not ConversationRecord:
        raise SourceError(f"{kind!r} is a knowledge connector: add it with `threadline knowledge add {kind}`")
    config = validated_config(connector, values).model_dump(exclude_none=True)
    source = get_or_create_source(session, name, kind=kind, config=config)
    if source.kind != kind:
        raise SourceError(f"source {name!r} already exists with kind {source.kind!r}")
    source.config = config
    return source


def source_id_by_name(engine: Engine, name: str) -> int:
    with Session(engine) as session:
        source_id = session.execute(select(Source.id).where(Source.name == name)).scalar_one_or_none()
    if source_id is None:
        raise SourceError(f"no source named {name!r}; see `threadline status` for the sources")
    return int(source_id)


def sync_error(exc: BaseException) -> str:
    """The reason a sync failed as recorded on its `source_syncs` row: bounded, never a token or customer text.

    `ConnectorError` messages carry status, code and path only (the contract); anything else
    may quote SQL parameters, so only its class is kept.
    """
    message = str(exc) if isinstance(exc, ConnectorError) else f"unexpected {type(exc).__name__}"
    return message[: get_settings().engine.max_sync_error_chars]


def sync_source(
    engine: Engine, source_id: int, *, since: int | None = None, run_id: int | None = None, job_id: int | None = None
) -> SyncReport:
    """Sync the source with id `source_id` through its connector (`since`: Unix seconds, else the watermark).

    The sync is recorded in `source_syncs` (`job_id`: the procrastinate job running it, if
    any): the conversations it writes name it, and its counters and outcome are kept.
    Raises `SourceError` for an unknown source or a kind that is not synced, and the
    connector's `ConnectorError`/`ConnectorAuthError` when the sync as a whole fails.
    """
    with Session(engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            raise SourceError(f"no source with id {source_id}")
        kind, name, values = source.kind, source.name, dict(source.config or {})
    try:
        connector = get_connector(kind)
    except UnknownPlugin:
        raise SourceError(f"source {name!r} is of kind {kind!r}, which no installed connector provides") from None
    if connector.sync is None:
        raise SourceError(f"source {name!r} is a {kind} source: its records arrive by `threadline import`, not by sync")
    config = validated_config(connector, values)
    sync = connector.sync

    with SyncRecord(engine, source_id, kind="sync", job_id=job_id) as record:

        async def run() -> SyncReport:
            return await sync(config, PostgresSink(engine, source_id, run_id, sync_id=record.id), since)

        try:
            report = asyncio.run(run())
        except Exception as exc:
            record.finish("failed", error=sync_error(exc))
            raise
        # skipped before fetching (stored version current): the sink never saw these
        record.finish("succeeded", unchanged=int(report.counters().get("unchanged", 0)))
    return report

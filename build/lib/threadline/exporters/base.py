"""The exporter contract: push a story to a team's tracker, keep it up to date, read its state back.

An exporter is one object (`Exporter`) exported by one module of `threadline.exporters` (or
of a plugin) and registered under the entry-point group `threadline.exporters`, like
connectors. Its configuration is a pydantic model stored on the tracker; it names the
environment variables that hold secrets, never the secrets. `open(config)` gives an
`ExporterClient` for one job (one HTTP client, closed at the end).

Threadline owns a marked block of the item's description and its own comments, never text
outside them; every item carries a hidden marker with the story identity, so an item
created just before a crash is found again (`find`) instead of duplicated.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from threadline.registry import Registry

EXPORTERS_GROUP = "threadline.exporters"


@dataclass(frozen=True)
class Evidence:
    """A quote as it goes into a tracker item: already masked, with a link to its conversation."""

    quote: str
    conversation: str  # the source's id of the conversation
    url: str | None  # an http(s) link to it, when the source has one


@dataclass(frozen=True)
class TrackerItem:
    """What Threadline writes into a tracker item (each exporter renders it in its own format)."""

    marker: str  # the story identity, hidden in the item so it can be found again
    title: str
    problem: str
    facts: dict[str, str]  # counts, trend, priority factors: label -> value
    evidence: list[Evidence] = field(default_factory=list)
    link: str | None = None  # back to the story in Threadline


@dataclass(frozen=True)
class TrackerRef:
    """Where an item lives: the tracker's own key and a link a person can open."""

    key: str
    url: str


@dataclass(frozen=True)
class TrackerState:
    """What the tracker says of an item now."""

    closed: bool
    closed_at: datetime | None = None
    owned_block_edited: bool = False  # a person changed Threadline's block: updates skip it


class ExporterClient(Protocol):
    """One job's connection to one tracker."""

    async def find(self, marker: str) -> TrackerRef | None:
        """The item carrying `marker`, if one exists (an earlier export, maybe interrupted)."""
        ...

    async def create(self, item: TrackerItem) -> TrackerRef:
        """A new item for `item`."""
        ...

    async def update(self, ref: TrackerRef, item: TrackerItem) -> bool:
        """Rewrite Threadline's block of the item; False (nothing written) when a person edited it."""
        ...

    async def comment(self, ref: TrackerRef, text: str) -> None:
        """Add a comment of Threadline's (new evidence, a regression)."""
        ...

    async def state(self, ref: TrackerRef) -> TrackerState:
        """Read the item's state back (closed or open, and since when)."""
        ...


@dataclass(frozen=True)
class Exporter:
    """A tracker kind: how it is configured and how a job talks to it."""

    kind: str
    label: str  # the product's name as a person writes it: "GitHub Issues"
    config_model: type[BaseModel]
    open: Callable[[Any], AbstractAsyncContextManager[ExporterClient]]


EXPORTERS: Registry[Exporter] = Registry(
    EXPORTERS_GROUP, name_of=lambda exporter: exporter.kind, check=lambda obj: isinstance(obj, Exporter)
)

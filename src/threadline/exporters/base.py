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


class TrackerError(Exception):
    """A tracker refused or failed a request; the message is one line, safe to show (no token, no customer text).

    The export service prefixes it with the tracker's name. `permanent` errors (a refused
    token, a missing project, a validation error) will fail again unchanged until a person
    acts; the others (the tracker down, rate limits outlasting the retries) may pass later.
    """

    permanent = False


class TrackerAuthError(TrackerError):
    """The token is missing, refused or lacks the permission the request needs."""

    permanent = True


class TrackerNotFound(TrackerError):
    """The repository, project, team or item does not exist (or the token cannot see it)."""

    permanent = True


class TrackerValidationError(TrackerError):
    """The tracker refused what we sent (a field, a document); the message names the fields, never their values."""

    permanent = True


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
    block_sha256: str | None = None  # set by `create`: the seal of the block it wrote


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

    async def link(self, key: str, item: TrackerItem) -> TrackerRef:
        """Take over the existing item `key` for `item` (`export --link`): `TrackerNotFound` when it does not exist.

        Adds the marker and Threadline's block when the item has none, else rewrites the block;
        the ref's `block_sha256` is the new seal, or None when a person edited the block.
        """
        ...

    async def update(self, ref: TrackerRef, item: TrackerItem) -> str | None:
        """Rewrite Threadline's block of the item; its new seal, or None (nothing written) when a person edited it.

        The block carries the SHA-256 of its own text as written; a block whose text no longer
        hashes to it (or that is gone) was edited by a person, and is left alone. (The first
        shape returned a bool; the seal is what the link records, so it is returned instead.)
        """
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

"""Scopes: the concrete set of sources a run reads, fixed when the run is created.

A scope is the sorted set of source ids; naming no source means every source that exists
when the run is created (so adding a source later starts a new scope). Theme lineages and
story identities belong to one scope: runs of different scopes never share a theme, a
name or a story.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert

from threadline.db.tables import SCOPES, SOURCES
from threadline.engine.errors import RunError

if TYPE_CHECKING:  # for annotations only: read commands query scopes without loading the ORM
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

__all__ = ["scope_key", "source_ids_by_name", "get_or_create_scope", "find_scope", "scope_names"]


def scope_key(source_ids: Iterable[int]) -> str:
    """The unique key of a set of source ids: sorted, comma-separated ("" for none)."""
    return ",".join(str(i) for i in sorted(set(source_ids)))


def source_ids_by_name(session: Session | Connection, names: Sequence[str]) -> list[int]:
    """Ids of the named sources, sorted; every source when `names` is empty. Unknown names raise RunError."""
    if not names:
        return sorted(session.execute(select(SOURCES.c.id)).scalars())
    found = dict(session.execute(select(SOURCES.c.name, SOURCES.c.id).where(SOURCES.c.name.in_(list(names)))).all())
    unknown = [n for n in dict.fromkeys(names) if n not in found]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise RunError(f"no source named {listed}; see `threadline status` for the sources")
    return sorted({found[n] for n in names})


def get_or_create_scope(session: Session, source_ids: Sequence[int]) -> Row[Any]:
    """The scope of exactly these sources (`id`, `key`, `source_ids`, `created_at`), created (race-free) when new."""
    key = scope_key(source_ids)
    session.execute(
        insert(SCOPES)
        .values(key=key, source_ids=sorted(set(source_ids)))
        .on_conflict_do_nothing(index_elements=["key"])
    )
    return session.execute(select(SCOPES).where(SCOPES.c.key == key)).one()


def find_scope(session: Session | Connection, names: Sequence[str]) -> Row[Any] | None:
    """The scope of exactly the named sources (None when no run ever read that set). Unknown names raise RunError."""
    ids = source_ids_by_name(session, names)
    return session.execute(select(SCOPES).where(SCOPES.c.key == scope_key(ids))).one_or_none()


def scope_names(session: Session | Connection, scope_ids: Iterable[int]) -> dict[int, list[str]]:
    """Source names of each scope, sorted (a deleted source shows as `#id`)."""
    wanted = sorted(set(scope_ids))
    if not wanted:
        return {}
    scopes = dict(session.execute(select(SCOPES.c.id, SCOPES.c.source_ids).where(SCOPES.c.id.in_(wanted))).all())
    every = {i for ids in scopes.values() for i in ids}
    names = (
        dict(session.execute(select(SOURCES.c.id, SOURCES.c.name).where(SOURCES.c.id.in_(every))).all())
        if every
        else {}
    )
    return {sid: sorted(names.get(i, f"#{i}") for i in ids) for sid, ids in scopes.items()}

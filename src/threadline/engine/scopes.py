"""Scopes: the concrete set of sources a run reads, fixed when the run is created.

A scope is the sorted set of source ids; naming no source means every source that exists
when the run is created (so adding a source later starts a new scope). Theme lineages and
story identities belong to one scope: runs of different scopes never share a theme, a
name or a story.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from threadline.db.models import Scope, Source
from threadline.engine.errors import RunError

__all__ = ["scope_key", "source_ids_by_name", "get_or_create_scope", "find_scope", "scope_names"]


def scope_key(source_ids: Iterable[int]) -> str:
    """The unique key of a set of source ids: sorted, comma-separated ("" for none)."""
    return ",".join(str(i) for i in sorted(set(source_ids)))


def source_ids_by_name(session: Session, names: Sequence[str]) -> list[int]:
    """Ids of the named sources, sorted; every source when `names` is empty. Unknown names raise RunError."""
    if not names:
        return sorted(session.execute(select(Source.id)).scalars())
    found = dict(session.execute(select(Source.name, Source.id).where(Source.name.in_(list(names)))).all())
    unknown = [n for n in dict.fromkeys(names) if n not in found]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise RunError(f"no source named {listed}; see `threadline status` for the sources")
    return sorted({found[n] for n in names})


def get_or_create_scope(session: Session, source_ids: Sequence[int]) -> Scope:
    """The scope of exactly these sources, created (race-free) when new."""
    key = scope_key(source_ids)
    session.execute(
        insert(Scope).values(key=key, source_ids=sorted(set(source_ids))).on_conflict_do_nothing(index_elements=["key"])
    )
    return session.execute(select(Scope).where(Scope.key == key)).scalar_one()


def find_scope(session: Session, names: Sequence[str]) -> Scope | None:
    """The scope of exactly the named sources (None when no run ever read that set). Unknown names raise RunError."""
    ids = source_ids_by_name(session, names)
    return session.execute(select(Scope).where(Scope.key == scope_key(ids))).scalar_one_or_none()


def scope_names(session: Session, scope_ids: Iterable[int]) -> dict[int, list[str]]:
    """Source names of each scope, sorted (a deleted source shows as `#id`)."""
    wanted = sorted(set(scope_ids))
    if not wanted:
        return {}
    scopes = dict(session.execute(select(Scope.id, Scope.source_ids).where(Scope.id.in_(wanted))).all())
    every = {i for ids in scopes.values() for i in ids}
    names = dict(session.execute(select(Source.id, Source.name).where(Source.id.in_(every))).all()) if every else {}
    return {sid: sorted(names.get(i, f"#{i}") for i in ids) for sid, ids in scopes.items()}

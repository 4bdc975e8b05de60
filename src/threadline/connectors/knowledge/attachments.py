"""Which knowledge answers which conversations: knowledge sources attached to conversation sources.

A run reads a scope (a set of conversation sources); its `coverage` stage uses the knowledge
sources attached to any source of that scope. When none of the scope's sources has an
attachment, the run uses all knowledge: a single help center needs no configuration, and
attaching knowledge to one source narrows only the scopes that include a source with an
attachment. The one code path of `threadline knowledge attach|detach` and `knowledge add --source`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from threadline.connectors.knowledge.sources import knowledge_source_id
from threadline.connectors.sources import SourceError
from threadline.db.models import KnowledgeSource, Source, SourceKnowledge

__all__ = [
    "KnowledgeSet",
    "attach_knowledge",
    "attached_knowledge",
    "attached_sources",
    "detach_knowledge",
    "knowledge_for_sources",
]


def _source_ids(session: Session, names: Sequence[str]) -> dict[str, int]:
    """{name: id} of the named conversation sources; `SourceError` naming every unknown one."""
    found = dict(session.execute(select(Source.name, Source.id).where(Source.name.in_(list(names)))).all())
    unknown = [name for name in dict.fromkeys(names) if name not in found]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise SourceError(f"no source named {listed}; see `threadline sources list`")
    return {name: int(found[name]) for name in dict.fromkeys(names)}


def attach_knowledge(session: Session, knowledge_name: str, source_names: Sequence[str]) -> list[str]:
    """Attach the knowledge source to the named conversation sources; the names newly attached (idempotent)."""
    knowledge_id = knowledge_source_id(session, knowledge_name)
    sources = _source_ids(session, source_names)
    if not sources:
        return []
    inserted = session.execute(
        insert(SourceKnowledge)
        .values([{"source_id": sid, "knowledge_source_id": knowledge_id} for sid in sources.values()])
        .on_conflict_do_nothing()
        .returning(SourceKnowledge.source_id)
    ).scalars()
    new = set(inserted)
    return [name for name, sid in sources.items() if sid in new]


def detach_knowledge(session: Session, knowledge_name: str, source_names: Sequence[str]) -> list[str]:
    """Detach the knowledge source from the named conversation sources; the names that were attached."""
    knowledge_id = knowledge_source_id(session, knowledge_name)
    sources = _source_ids(session, source_names)
    if not sources:
        return []
    removed = session.execute(
        delete(SourceKnowledge)
        .where(
            SourceKnowledge.knowledge_source_id == knowledge_id,
            SourceKnowledge.source_id.in_(list(sources.values())),
        )
        .returning(SourceKnowledge.source_id)
    ).scalars()
    gone = set(removed)
    return [name for name, sid in sources.items() if sid in gone]


def attached_sources(session: Session) -> dict[int, list[str]]:
    """{knowledge source id: names of the conversation sources it is attached to, sorted}."""
    rows = session.execute(
        select(SourceKnowledge.knowledge_source_id, Source.name).join(Source, Source.id == SourceKnowledge.source_id)
    )
    out: dict[int, list[str]] = defaultdict(list)
    for knowledge_id, name in rows:
        out[int(knowledge_id)].append(name)
    return {key: sorted(names) for key, names in out.items()}


def attached_knowledge(session: Session) -> dict[int, list[str]]:
    """{conversation source id: names of the knowledge sources attached to it, sorted}."""
    rows = session.execute(
        select(SourceKnowledge.source_id, KnowledgeSource.name).join(
            KnowledgeSource, KnowledgeSource.id == SourceKnowledge.knowledge_source_id
        )
    )
    out: dict[int, list[str]] = defaultdict(list)
    for source_id, name in rows:
        out[int(source_id)].append(name)
    return {key: sorted(names) for key, names in out.items()}


@dataclass(frozen=True)
class KnowledgeSet:
    """The knowledge a scope uses: {knowledge source id: name}, and whether it was chosen by attachment."""

    sources: dict[int, str]
    attached: bool

    @property
    def ids(self) -> list[int]:
        return sorted(self.sources)


def knowledge_for_sources(session: Session, source_ids: Iterable[int]) -> KnowledgeSet:
    """The knowledge sources attached to any of `source_ids`; every knowledge source when none is attached."""
    wanted = sorted(set(source_ids))
    attached = dict(
        session.execute(
            select(KnowledgeSource.id, KnowledgeSource.name)
            .join(SourceKnowledge, SourceKnowledge.knowledge_source_id == KnowledgeSource.id)
            .where(SourceKnowledge.source_id.in_(wanted))
        ).all()
    )
    if attached:
        return KnowledgeSet({int(k): v for k, v in attached.items()}, attached=True)
    every = session.execute(select(KnowledgeSource.id, KnowledgeSource.name)).all()
    return KnowledgeSet({int(k): v for k, v in every}, attached=False)

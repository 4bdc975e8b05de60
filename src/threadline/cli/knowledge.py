"""`threadline knowledge add KIND|list|sync NAME|attach NAME|detach NAME`: help-center articles and documentation.

`knowledge add` has one sub-command per registered knowledge connector kind (record type
`ArticleRecord`), with one option per field of its configuration model, like `sources add`,
plus `--source` (repeatable) to attach the new knowledge to conversation sources. A run uses
the knowledge attached to the sources it reads, or all knowledge when none of them has any
(`threadline.connectors.knowledge.attachments`).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from threadline.cli.common import console, emit_json, engine, fail
from threadline.cli.sources import _add_command

EXIT_DEAD_LETTERS = 1  # the sync finished but some pages are dead-lettered (retried next sync)
EXIT_FAILED = 2  # nothing usable happened (unknown source, folder missing, site down)
ATTACH_PARAMETER = "attach_to_sources"  # `knowledge add --source`: a name no connector's configuration field uses


class KnowledgeKinds(TyperGroup):
    """`knowledge add` lists one command per registered knowledge connector kind, loaded on demand."""

    def list_commands(self, ctx: Any) -> list[str]:
        from threadline.connectors.knowledge.sources import knowledge_kinds  # loaded only when asked (start-up)

        return knowledge_kinds()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.list_commands(ctx):
            return None
        return _add_command(cmd_name, add_knowledge_command, extra=[_ATTACH_OPTION])


_ATTACH_OPTION = inspect.Parameter(
    ATTACH_PARAMETER,
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        list[str] | None,
        typer.Option("--source", help="Attach the new knowledge to this conversation source (repeatable)."),
    ],
)


knowledge_app = typer.Typer(
    help="Knowledge sources (help centers, docs sites, folders): add, list, sync, attach to sources."
)
add_app = typer.Typer(cls=KnowledgeKinds, help="Add a knowledge source of a connector kind.", no_args_is_help=True)
knowledge_app.add_typer(add_app, name="add")


def add_knowledge_command(kind: str, name: str, values: dict[str, Any]) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.connectors.knowledge.attachments import attach_knowledge
    from threadline.connectors.knowledge.sources import add_knowledge_source
    from threadline.connectors.sources import SourceError

    attach_to = list(values.pop(ATTACH_PARAMETER, ()) or ())
    try:
        with Session(engine()) as session, session.begin():
            source = add_knowledge_source(session, kind, name, values)
            source_id = source.id
            attach_knowledge(session, name, attach_to)
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    attached = f", attached to {', '.join(dict.fromkeys(attach_to))}" if attach_to else ""
    console.print(f"{kind} knowledge source {name} (id {source_id}){attached}", markup=False, highlight=False)


@knowledge_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Knowledge sources with their kind, the conversation sources they are attached to, articles and last sync."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.connectors.knowledge.attachments import attached_sources
    from threadline.connectors.knowledge.sources import list_knowledge

    with Session(engine()) as session:
        rows = list_knowledge(session)
        attached = attached_sources(session)
    for row in rows:
        row["sources"] = attached.get(int(row["id"]), [])
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "name", "kind", "sources", "articles", "removed", "passages", "last sync")
    for row in rows:
        last = row["last_sync"]
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            str(row["kind"]),
            ", ".join(row["sources"]) or "(none)",
            str(row["articles"]),
            str(row["removed_articles"]),
            str(row["passages"]),
            "never" if last is None else f"{last['status']} {last['finished_at'] or last['started_at']}",
        )
    console.print(table)


@knowledge_app.command("sync")
def sync_command(
    name: Annotated[str, typer.Argument(help="Name of the knowledge source to sync.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    queue: Annotated[
        bool, typer.Option("--queue", help="Queue the sync for `threadline worker` instead of running it here.")
    ] = False,
) -> None:
    """Read the knowledge source again: new and changed articles are split and embedded, removed ones marked.

    One sync at a time per knowledge source: while another runs, this one is refused (exit 2).
    Exit code 0: synced (or queued); 1: synced, but some pages are dead-lettered (retried next sync); 2: failed.
    """
    if queue:
        _queue_sync(name, as_json)
        return
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.base import ConnectorError
    from threadline.connectors.knowledge.sources import sync_knowledge
    from threadline.connectors.sources import SourceError

    try:
        result = sync_knowledge(engine(), name)
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ConnectorError as exc:
        raise fail(f"knowledge sync of {name!r} failed: {exc}", EXIT_FAILED) from None
    if as_json:
        emit_json({"source": name, "sync_id": result.sync_id, **result.counters})
    else:
        table = Table("counter", "value", title=f"knowledge sync {name} (sync {result.sync_id})")
        for key, value in result.counters.items():
            table.add_row(key, str(value))
        console.print(table)
    if result.counters.get("dead_lettered"):
        raise typer.Exit(EXIT_DEAD_LETTERS)


def _queue_sync(name: str, as_json: bool) -> None:
    """Queue a `threadline.knowledge_sync` job (or name the one already queued or running)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.connectors.sources import SourceError
    from threadline.engine.knowledge_sync import UnknownKnowledgeSource, enqueue_knowledge_sync

    try:
        with Session(engine()) as session, session.begin():
            job = enqueue_knowledge_sync(session, name)
    except UnknownKnowledgeSource:
        raise fail(f"no knowledge source named {name!r}; see `threadline knowledge list`", EXIT_FAILED) from None
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if as_json:
        emit_json({"source": name, "job_id": job.job_id, "created": job.created, "status": str(job.status)})
        return
    state = "queued" if job.created else f"already {job.status}"
    console.print(f"knowledge sync of {name}: job {job.job_id} {state}", markup=False, highlight=False)


_SOURCES_OPTION = typer.Option(
    "--source", help="Name of a conversation source (repeatable); see `threadline sources list`."
)


def _change_attachment(knowledge: str, sources: list[str], *, attach: bool) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.connectors.knowledge.attachments import attach_knowledge, detach_knowledge
    from threadline.connectors.sources import SourceError

    if not sources:
        raise fail("name at least one conversation source with --source", EXIT_FAILED)
    try:
        with Session(engine()) as session, session.begin():
            changed = (attach_knowledge if attach else detach_knowledge)(session, knowledge, sources)
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    verb = "attached to" if attach else "detached from"
    for name in dict.fromkeys(sources):
        state = verb if name in changed else ("already attached to" if attach else "was not attached to")
        console.print(f"knowledge {knowledge} {state} source {name}", markup=False, highlight=False)


@knowledge_app.command("attach")
def attach_command(
    name: Annotated[str, typer.Argument(help="Name of the knowledge source.")],
    sources: Annotated[list[str] | None, _SOURCES_OPTION] = None,
) -> None:
    """Attach knowledge to conversation sources: runs reading them use it (attaching twice changes nothing).

    A run uses the knowledge attached to any source it reads; when none of its sources has an
    attachment, it uses all knowledge. Runs that already finished keep the knowledge they used.
    """
    _change_attachment(name, sources or [], attach=True)


@knowledge_app.command("detach")
def detach_command(
    name: Annotated[str, typer.Argument(help="Name of the knowledge source.")],
    sources: Annotated[list[str] | None, _SOURCES_OPTION] = None,
) -> None:
    """Detach knowledge from conversation sources; runs that already finished keep the knowledge they used."""
    _change_attachment(name, sources or [], attach=False)


def register(app: typer.Typer) -> None:
    """Add `knowledge` to the `threadline` command."""
    app.add_typer(knowledge_app, name="knowledge")

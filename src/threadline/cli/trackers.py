"""`threadline trackers add KIND|list|remove|pull` and `threadline export --tracker NAME`.

`trackers add` has one sub-command per registered exporter kind, with one option per field
of the exporter's configuration model (built when asked for, like `sources add`). Tokens are
never options: a tracker's configuration names the environment variables that hold them.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from threadline.cli.common import console, emit_json, engine, fail, plain
from threadline.cli.options import config_parameters, configured_table

EXIT_SOME_FAILED = 1  # the export ran but some stories are dead-lettered
EXIT_FAILED = 2  # nothing was exported (unknown tracker, refused token, missing project)


def _add_command(kind: str) -> Any:
    """`trackers add KIND`: `--name` plus one option per field of the exporter's configuration model."""
    from threadline.exporters.base import EXPORTERS  # loaded only when `trackers add` runs (start-up)

    exporter = EXPORTERS.get(kind)
    parameters = config_parameters(exporter.config_model, "Name of the new tracker.")

    def add(**values: Any) -> None:
        name = values.pop("name")
        chosen = {key: getattr(value, "value", value) for key, value in values.items() if value is not None}
        add_tracker_command(kind, name, chosen)

    add.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    add.__annotations__ = {p.name: p.annotation for p in parameters}
    add.__doc__ = f"Add a {exporter.label} tracker."
    command_app = typer.Typer(add_completion=False)
    command_app.command(kind)(add)
    return typer.main.get_command(command_app)


class ExporterKinds(TyperGroup):
    """`trackers add` lists one command per registered exporter kind, loaded on demand."""

    def list_commands(self, ctx: Any) -> list[str]:
        from threadline.exporters.base import EXPORTERS  # loaded only when `trackers add` runs (start-up)

        return sorted(exporter.kind for exporter in EXPORTERS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _add_command(cmd_name) if cmd_name in self.list_commands(ctx) else None


trackers_app = typer.Typer(help="Trackers stories are exported to: add, list, remove, pull.", no_args_is_help=True)
add_app = typer.Typer(cls=ExporterKinds, help="Add a tracker of an exporter kind.", no_args_is_help=True)
trackers_app.add_typer(add_app, name="add")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def add_tracker_command(kind: str, name: str, values: dict[str, Any]) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.trackers import TrackerConfigError, add_tracker

    try:
        with Session(engine()) as session, session.begin():
            tracker = add_tracker(session, kind, name, values)
            tracker_id, config = tracker.id, dict(tracker.config)
    except TrackerConfigError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    secret_vars = ", ".join(f"${value}" for key, value in config.items() if key.endswith("_env"))
    reads = f"; reads its secrets from {secret_vars}" if secret_vars else ""
    console.print(plain(f"{kind} tracker {name} (id {tracker_id}){reads}"))


@trackers_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Trackers with their kind and configuration (variable names, never secrets)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.trackers import list_trackers

    with Session(engine()) as session:
        rows = list_trackers(session)
    if as_json:
        emit_json(rows)
        return
    console.print(configured_table(rows))


@trackers_app.command("remove")
def remove_command(
    name: Annotated[str, typer.Argument(help="Name of the tracker to remove.")], as_json: JsonOption = False
) -> None:
    """Remove a tracker and its links (the items stay in the tracker)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.trackers import remove_tracker

    with Session(engine()) as session, session.begin():
        removed = remove_tracker(session, name)
    if as_json:
        emit_json({"tracker": name, "removed": removed})
    if not removed:
        raise fail(f"no tracker named {name!r}", EXIT_FAILED)
    if not as_json:
        console.print(plain(f"tracker {name} removed"))


def export_command(
    story_ids: Annotated[list[int] | None, typer.Argument(help="Story ids to export.", show_default=False)] = None,
    tracker: Annotated[str, typer.Option("--tracker", help="Name of the tracker (see `trackers list`).")] = "",
    status: Annotated[
        str | None, typer.Option("--status", help="Export every story with this status (e.g. accepted).")
    ] = None,
    link: Annotated[
        str | None,
        typer.Option(
            "--link",
            help="Link the one story given to this existing item instead of creating one "
            "(GitHub issue number, Jira key, Linear identifier).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Export stories to a tracker: one item per story, updated (never duplicated) on re-export.

    With `--link ITEM`, the one story given is linked to an existing item instead: Threadline's
    block is added to it, and later exports update it. Exit code 0: every story exported; 1: some
    are dead-lettered (stage export.TRACKER); 2: none (unknown tracker, refused token, missing
    project, a missing item or a story already linked).
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.delivery.trackers import ExportFailed, export_stories, link_story, stories_with_status
    from threadline.engine.curation import CLI_ACTOR

    if not tracker:
        raise fail("--tracker NAME is required (see `threadline trackers list`)", EXIT_FAILED)
    if bool(story_ids) == bool(status):
        raise fail("give story ids or --status, not both nor neither", EXIT_FAILED)
    if link is not None and (status or len(story_ids or []) != 1 or not link.strip()):
        raise fail("--link ITEM takes exactly one story id (and no --status)", EXIT_FAILED)
    eng = engine()
    ids = list(story_ids or []) or stories_with_status(eng, status or "")
    try:
        if link is not None:
            report = link_story(eng, tracker, ids[0], link.strip(), actor=CLI_ACTOR)
        else:
            report = export_stories(eng, tracker, ids, actor=CLI_ACTOR)
    except ExportFailed as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if as_json:
        emit_json(report.as_dict())
    else:
        table = Table("story", "action", "item", "url", title=f"export to {tracker}")
        for outcome in report.outcomes:
            table.add_row(
                plain(str(outcome.story_id)),
                plain(outcome.action),
                plain(outcome.key or ""),
                plain(outcome.url or outcome.error or ""),
            )
        console.print(table)
    if report.count("failed"):
        raise typer.Exit(EXIT_SOME_FAILED)


def register(app: typer.Typer) -> None:
    """Add `trackers` and `export` to the `threadline` command."""
    app.add_typer(trackers_app, name="trackers")
    app.command("export")(export_command)


@trackers_app.command("pull")
def pull_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Trackers to read (default: all).", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Read each linked item's state: a closed item sets its story to done; flag themes recurring after close."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.delivery.trackers import ExportFailed, pull_tracker, tracker_names
    from threadline.engine.curation import CLI_ACTOR

    eng = engine()
    reports, failures = [], []
    for name in names or tracker_names(eng):
        try:
            reports.append(pull_tracker(eng, name, actor=CLI_ACTOR).as_dict())
        except ExportFailed as exc:
            failures.append(str(exc))
    if as_json:
        emit_json({"trackers": reports, "errors": failures})
    else:
        table = Table("tracker", "checked", "closed", "reopened", "regressions", "failed", title="trackers pull")
        for r in reports:
            table.add_row(
                *(plain(str(r[k])) for k in ("tracker", "checked", "closed", "reopened", "regressions", "failed"))
            )
        console.print(table)
        for message in failures:
            fail(message, EXIT_FAILED)
    if failures:
        raise typer.Exit(EXIT_FAILED)

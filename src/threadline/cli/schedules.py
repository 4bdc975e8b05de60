"""`threadline schedules add|list|remove`: periodic sync -> run -> deliver of a scope, run by the workers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from threadline.cli.common import console, emit_json, engine, fail, plain

EXIT_FAILED = 2  # the schedule could not be added or found

schedules_app = typer.Typer(
    help="Periodic sync -> run -> deliver per scope (workers run them): add, list, remove.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@schedules_app.command("add")
def add_command(
    sources: Annotated[list[str], typer.Option("--source", help="A source of the scope (repeat for several).")],
    every: Annotated[str | None, typer.Option("--every", help="Period: 30s, 15m, 1h, 1d.")] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="Cron expression, UTC: '0 7 * * 1-5'.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Schedule a scope; adding the same sources again replaces the timing."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.engine.schedules import ScheduleError, add_schedule, schedule_view

    try:
        with Session(engine()) as session, session.begin():
            view = schedule_view(add_schedule(session, sources, every=every, cron=cron))
    except ScheduleError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if as_json:
        emit_json(view)
        return
    timing = f"every {view['every_s']}s" if view["every_s"] else f"cron {view['cron']}"
    console.print(plain(f"schedule {view['id']}: {', '.join(view['sources'])} {timing}, next {view['next_at'][:19]}"))


@schedules_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Schedules with their next due time and their last scheduled run."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.engine.schedules import list_schedules

    with Session(engine()) as session:
        rows = list_schedules(session)
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "sources", "timing", "next", "last run", "last error")
    for row in rows:
        timing = f"every {row['every_s']}s" if row["every_s"] else f"cron {row['cron']}"
        table.add_row(
            plain(str(row["id"])),
            plain(", ".join(row["sources"])),
            plain(timing),
            plain(row["next_at"][:19]),
            plain(str(row["last_run_id"] or "")),
            plain(row["last_error"] or ""),
        )
    console.print(table)


@schedules_app.command("remove")
def remove_command(
    schedule_id: Annotated[int, typer.Argument(help="Schedule id (see `schedules list`).")], as_json: JsonOption = False
) -> None:
    """Remove a schedule (the runs it started stay)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.engine.schedules import remove_schedule

    with Session(engine()) as session, session.begin():
        removed = remove_schedule(session, schedule_id)
    if as_json:
        emit_json({"schedule": schedule_id, "removed": removed})
    if not removed:
        raise fail(f"no schedule {schedule_id}", EXIT_FAILED)
    if not as_json:
        console.print(plain(f"schedule {schedule_id} removed"))


def register(app: typer.Typer) -> None:
    """Add `schedules` to the `threadline` command."""
    app.add_typer(schedules_app, name="schedules")

"""`threadline run` and run management."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from threadline.cli.common import console, emit_json, engine, err_console, fail, parse_date

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)


def run_command(
    source: Annotated[str | None, typer.Option("--source", help="Only this source's conversations.")] = None,
    since: Annotated[str | None, typer.Option(help="Conversations created on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Conversations created before this date.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Analyse conversations: embed, classify, discover themes, write stories."""
    from threadline.ai.embeddings import get_embedder
    from threadline.db.engine import session_scope
    from threadline.pipeline.runs import PHASES, RunError, create_run, execute_run

    eng = engine()
    try:
        with session_scope(eng) as session:
            run = create_run(session, source=source, since=parse_date(since, "--since"), until=parse_date(until, "--until"))
            run_id, size = run.id, run.counters["conversations"]
    except RunError as exc:
        raise fail(str(exc)) from None
    if size == 0:
        err_console.print("no conversations match; import some with `threadline import`")
    embedder = get_embedder()
    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=as_json) as progress:
        tasks = {phase: progress.add_task(phase, total=None) for phase in PHASES}

        def report(phase: str, done: int, total: int) -> None:
            progress.update(tasks[phase], completed=done, total=total)

        finished = execute_run(eng, run_id, embedder, progress=report)
    if as_json:
        emit_json({"run_id": finished.id, "status": finished.status, "counters": finished.counters})
        return
    counters = finished.counters
    embed = counters.get("embed", {})
    themes = counters.get("themes", {})
    stories = counters.get("stories", {})
    console.print(
        f"run {finished.id} {finished.status}: {size} conversations; embeddings computed {embed.get('computed', 0)}, "
        f"reused {embed.get('reused', 0)}; {themes.get('themes', 0)} themes ({themes.get('new_themes', 0)} new, "
        f"{themes.get('unassigned', 0)} conversations unassigned); {stories.get('stories', 0)} stories"
    )

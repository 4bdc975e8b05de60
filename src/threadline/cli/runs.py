"""`threadline run`, `worker`, `runs ...` and `dlq ...`: durable runs from the command line.

`run` enqueues a run and executes it with an in-process worker (Rich progress);
`run --detach` only enqueues (any `threadline worker` executes it). The pipeline work
itself always runs in worker threads, never in the CLI's event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from threadline.cli.common import LimitOption, console, emit_json, engine, err_console, fail, get_settings, parse_date

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option(
        "--concurrency", min=1, help="Jobs this worker runs at once (threads); default THREADLINE_WORKER_CONCURRENCY."
    ),
]

runs_app = typer.Typer(help="List, inspect, stop and resume runs.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: items a stage gave up on.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("worker")(worker_command)
    app.add_typer(runs_app, name="runs")
    app.add_typer(dlq_app, name="dlq")


def run_command(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Read these sources (repeatable; default: every source that exists now)."),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Conversations created on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Conversations created before this date.")] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Only enqueue; `threadline worker` processes run it.")
    ] = False,
    concurrency: ConcurrencyOption = None,
    sync: Annotated[
        bool, typer.Option("--sync", help="Sync --source through its connector first, then run on it.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Analyse conversations: embed and classify, discover themes, write stories."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.runs import check_period, default_phases, execute_run
    from threadline.engine.service import RunError, enqueue_run

    since_at, until_at = parse_date(since, "--since"), parse_date(until, "--until")
    try:
        check_period(since_at, until_at)  # before anything is written, a sync included
    except RunError as exc:
        raise fail(str(exc)) from None
    eng = engine()
    if sync:
        if source is None or len(source) != 1:
            raise fail("--sync needs exactly one --source NAME (a source with a connector, e.g. Intercom)")
        _sync_first(eng, source[0])
    try:
        with session_scope(eng) as session:
            run_id = enqueue_run(session, sources=source or (), since=since_at, until=until_at)
    except RunError as exc:
        raise fail(str(exc)) from None
    if detach:
        if as_json:
            emit_json({"run_id": run_id, "status": "queued"})
        else:
            console.print(
                f"run {run_id} queued; `threadline worker` executes it, `threadline runs show {run_id}` follows it"
            )
        return
    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, disable=as_json) as progress:
        tasks = {phase: progress.add_task(phase, total=None) for phase in default_phases()}

        def report(phase: str, done: int, total: int) -> None:
            if phase in tasks:
                progress.update(tasks[phase], completed=done, total=total)

        finished = execute_run(eng, run_id, progress=report, concurrency=_concurrency(concurrency))
    _print_finished(finished, as_json)
    if finished.status == "failed":
        raise typer.Exit(1)


def _sync_first(eng: Any, source: str) -> None:
    """Bring the source up to date before the run takes its membership snapshot."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.base import ConnectorError
    from threadline.connectors.sources import SourceError, source_id_by_name, sync_source

    try:
        report = sync_source(eng, source_id_by_name(eng, source))
    except (SourceError, ConnectorError) as exc:
        raise fail(f"sync of {source!r} failed: {exc}") from None
    counters = ", ".join(f"{key} {value}" for key, value in report.counters().items())
    err_console.print(f"synced {source}: {counters}", markup=False, highlight=False)


def _print_finished(finished: Any, as_json: bool) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.runs import run_view

    with session_scope(engine()) as session:
        view = run_view(session, finished.id)
    if as_json:
        emit_json({"run_id": finished.id, "status": finished.status, "counters": finished.counters, "run": view})
        return
    counters = finished.counters or {}
    embed, themes, stories = counters.get("embed", {}), counters.get("themes", {}), counters.get("stories", {})
    dead = view["dead_letters"] if view else 0
    console.print(
        f"run {finished.id} {finished.status} ({', '.join(view['sources']) if view else ''}): "
        f"{counters.get('conversations', 0)} conversations; embeddings computed "
        f"{embed.get('computed', 0)}, reused {embed.get('reused', 0)}; {themes.get('themes', 0)} themes "
        f"({themes.get('new_themes', 0)} new, {themes.get('continued_themes', 0)} continued, "
        f"{themes.get('unassigned', 0)} conversations unassigned); "
        f"{stories.get('stories', 0)} stories; {dead} dead letters"
    )


def _concurrency(requested: int | None) -> int:
    """`--concurrency`, or the configured default; at most the configured maximum."""
    settings = get_settings().engine
    value = requested or settings.worker_concurrency
    if value > settings.max_worker_concurrency:
        raise fail(f"--concurrency is at most {settings.max_worker_concurrency}: run more worker processes instead")
    return value


def worker_command(
    concurrency: ConcurrencyOption = None,
    heartbeat: Annotated[
        float | None,
        typer.Option(
            "--heartbeat", min=0.5, help="Seconds between heartbeats; default THREADLINE_HEARTBEAT_INTERVAL_S."
        ),
    ] = None,
    stalled_after: Annotated[
        float | None,
        typer.Option(
            "--stalled-after",
            min=2.0,
            help="Seconds without heartbeat before a worker's jobs are taken over; default THREADLINE_STALLED_WORKER_TIMEOUT_S.",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Worker name shown in logs.")] = None,
    nice: Annotated[
        int | None,
        typer.Option(
            "--nice",
            min=0,
            max=19,
            help="CPU niceness: batch work yields to the API server on the same machine; default THREADLINE_WORKER_NICENESS.",
        ),
    ] = None,
) -> None:
    """Execute queued runs (any number of workers, on any machines, against THREADLINE_DATABASE_URL)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    import os

    from threadline.engine.worker import run_worker, served_queues

    concurrency = _concurrency(concurrency)
    nice = get_settings().engine.worker_niceness if nice is None else nice
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    eng = engine()
    # Decided here, in the main thread, before "started": loading a model may take a while, and a
    # signal meanwhile then stops the process at once instead of waiting for a loader thread.
    queues = served_queues()
    err_console.print(f"worker started (concurrency {concurrency}); Ctrl-C finishes in-flight jobs and exits")
    run_worker(
        eng, concurrency=concurrency, heartbeat_s=heartbeat, stalled_after_s=stalled_after, name=name, queues=queues
    )


def _show(view: dict[str, Any]) -> None:
    console.print(
        f"run {view['id']} [bold]{view['status']}[/bold] phase {view['phase'] or '-'}; "
        f"{view['conversations']} conversations; progress {view['progress']:.0%}; dead letters {view['dead_letters']}"
    )
    params = view.get("params") or {}
    if params.get("embedding_backend"):  # fixed when the run was created; every worker of the run uses it
        console.print(f"embedding backend {params['embedding_backend']} ({params.get('embedding_model')})")
    table = Table("phase", "state", "total", "done", "skipped", "dead", "retries", "duration s")
    for phase, c in view["counters"].items():
        duration = "" if c["duration_s"] is None else f"{c['duration_s']:.1f}"
        table.add_row(
            phase,
            c["state"],
            str(c["total"]),
            str(c["done"]),
            str(c["skipped"]),
            str(c["dead"]),
            str(c["retries"]),
            duration,
        )
    console.print(table)
    if view["error"]:
        console.print(f"[red]error:[/red] {view['error']}")


@runs_app.command("list")
def runs_list(limit: LimitOption = 20, as_json: JsonOption = False) -> None:
    """Recent runs, newest first."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import read_scope
    from threadline.read.runs import list_runs

    with read_scope(engine()) as conn:
        views = list_runs(conn, limit=limit, offset=0)
    if as_json:
        emit_json(views)
        return
    table = Table("run", "sources", "period", "status", "phase", "conversations", "progress", "dead letters", "created")
    for v in views:
        period = f"{(v['period_start'] or '')[:10]} to {(v['period_end'] or '')[:10]}" if v["period_start"] else ""
        table.add_row(
            str(v["id"]),
            ", ".join(v["sources"]),
            period,
            v["status"],
            v["phase"] or "",
            str(v["conversations"]),
            f"{v['progress']:.0%}",
            str(v["dead_letters"]),
            (v["created_at"] or "")[:19],
        )
    console.print(table)


def _with_run(run_id: int, action: str, as_json: bool) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine import service
    from threadline.read.runs import run_view

    try:
        with session_scope(engine()) as session:
            if action == "stop":
                service.request_stop(session, run_id)
            elif action == "resume":
                service.resume_run(session, run_id)
        with session_scope(engine()) as session:
            view = run_view(session, run_id)
    except service.RunError as exc:
        raise fail(str(exc)) from None
    if view is None:
        raise fail(f"no run {run_id}")
    if as_json:
        emit_json(view)
    else:
        _show(view)


@runs_app.command("show")
def runs_show(run_id: int, as_json: JsonOption = False) -> None:
    """Per-phase counts, durations, retries and dead letters of a run."""
    _with_run(run_id, "show", as_json)


@runs_app.command("stop")
def runs_stop(run_id: int, as_json: JsonOption = False) -> None:
    """Request a stop: in-flight batches finish, no new ones start; the run becomes `stopped`."""
    _with_run(run_id, "stop", as_json)


@runs_app.command("resume")
def runs_resume(run_id: int, as_json: JsonOption = False) -> None:
    """Continue a stopped (or failed) run with only its unfinished work."""
    _with_run(run_id, "resume", as_json)


@dlq_app.command("list")
def dlq_list(
    run: Annotated[int | None, typer.Option("--run", help="Only this run's dead letters.")] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead letters not yet retried, newest first."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.dead_letters import list_dead_letters

    with session_scope(engine()) as session:
        letters = list_dead_letters(session, run_id=run, limit=limit)
    if as_json:
        emit_json(letters)
        return
    table = Table("id", "run", "stage", "item", "error", "attempts", "failed")
    for d in letters:
        table.add_row(
            str(d["id"]),
            str(d["run_id"]),
            d["stage"],
            d["item"],
            f"{d['error_class']}: {d['error_message']}"[:80],
            str(d["attempts"]),
            (d["failed_at"] or "")[:19],
        )
    console.print(table)


@dlq_app.command("retry")
def dlq_retry(
    dead_letter_id: Annotated[int | None, typer.Argument(help="Dead letter id (see `dlq list`).")] = None,
    run: Annotated[int | None, typer.Option("--run", help="Retry every open dead letter of this run.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every open dead letter.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-enqueue dead-lettered items (each at most once: concurrent retries re-enqueue it once)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.service import retry_dead_letter, retry_dead_letters

    if sum((dead_letter_id is not None, run is not None, all_)) != 1:
        raise fail("give exactly one of: a dead letter ID, --run R, --all")
    with session_scope(engine()) as session:
        if dead_letter_id is not None:
            retried = int(retry_dead_letter(session, dead_letter_id))
        else:
            retried = retry_dead_letters(session, run_id=run)
    if as_json:
        emit_json({"retried": retried})
    else:
        console.print(f"{retried} dead letter(s) re-enqueued")
    if dead_letter_id is not None and not retried:
        raise typer.Exit(1)


@dlq_app.command("purge")
def dlq_purge(
    run: Annotated[int | None, typer.Option("--run", help="Only this run's dead letters.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Delete dead letters that were already retried."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.service import purge_dead_letters

    with session_scope(engine()) as session:
        purged = purge_dead_letters(session, run_id=run)
    if as_json:
        emit_json({"purged": purged})
    else:
        console.print(f"{purged} retried dead letter(s) purged")

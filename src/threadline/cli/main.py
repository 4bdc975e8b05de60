"""The `threadline` command: import, run, read the results."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from threadline.cli import evaluate, knowledge, notify, runs, schedules, serve, sources, trackers
from threadline.cli.common import (
    LimitOption,
    console,
    emit_json,
    engine,
    err_console,
    fail,
    get_settings,
    plain,
    setup_logging,
)

if TYPE_CHECKING:  # for annotations only: the CLI imports read models when a command runs
    from threadline.read.views import RunRef

app = typer.Typer(
    name="threadline",
    help="Turn customer-support conversations into evidence-backed product backlog stories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


@app.callback()
def _main() -> None:
    setup_logging()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.migrate import current_revisions

    console.print(f"database at revision {', '.join(sorted(current_revisions(engine()))) or '(none)'}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL now instead of after its idle grace period.

    Refuses (exit 1, naming the processes) while a worker, `threadline serve` or another command
    uses it: stop those first. Nothing to do with THREADLINE_DATABASE_URL (an external server).
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.embedded import stop_embedded

    settings = get_settings()
    if settings.database_url:
        console.print("THREADLINE_DATABASE_URL is set: there is no embedded server to stop", markup=False)
        return
    outcome = stop_embedded(settings.embedded_pgdata)
    if outcome.holders:
        users = ", ".join(f"{name} (pid {pid})" for pid, name in outcome.holders)
        raise fail(f"the embedded server is in use by {users}; stop them first, then run `threadline db stop`", 1)
    console.print("embedded server stopped" if outcome.stopped else "the embedded server was not running")


EXIT_CLEAN, EXIT_SOME_REJECTED, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 3  # `threadline import` exit codes
MAX_PRINTED_PROBLEMS = 200  # problem lines printed on the terminal; --json lists them all (up to the report bound)


@db_app.command("backup")
def db_backup(path: Annotated[Path, typer.Argument(help="File to write (PostgreSQL custom format).")]) -> None:
    """Write the whole database (conversations, runs, snapshots, tokens) to one file."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.backup import BackupError, backup

    try:
        size = backup(engine(), path)
    except BackupError as exc:
        raise fail(str(exc), code=1) from None
    console.print(f"backup written to {path} ({size / 1_048_576:.1f} MiB)", markup=False)


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A file written by `threadline db backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Replace the database with a backup (stop workers and `threadline serve` first)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.backup import BackupError, restore

    if not yes and not typer.confirm("Replace everything in the database with this backup?"):
        raise typer.Exit(1)
    try:
        restore(engine(), path)
    except BackupError as exc:
        raise fail(str(exc), code=1) from None
    console.print(f"database restored from {path}", markup=False)


@app.command("import")
def import_command(
    path: Annotated[
        Path, typer.Argument(help="A .jsonl (one conversation per line) or .csv (one message per row) file.")
    ],
    source: Annotated[str, typer.Option("--source", help="Source name to import into.")] = "default",
    file_format: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the extension).")
    ] = None,
    text_col: Annotated[str | None, typer.Option(help="CSV: message text column [default: text].")] = None,
    conversation_col: Annotated[
        str | None,
        typer.Option(help="CSV: conversation id column [default: conversation_id; absent: one conversation per row]."),
    ] = None,
    message_col: Annotated[str | None, typer.Option(help="CSV: message id column [default: message_id].")] = None,
    author_col: Annotated[
        str | None, typer.Option(help="CSV: author role column [default: author; absent: customer].")
    ] = None,
    time_col: Annotated[
        str | None, typer.Option(help="CSV: message time column, ISO-8601 with offset [default: created_at].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import conversations; invalid records are reported by line and skipped, the rest imported.

    Exit code 0: everything imported as is; 1: some records were rejected, changed (truncated, no
    time) or superseded by a later line with the same id; 2: the file as a whole is unusable (nothing
    written); 3: an unexpected error stopped the import (what was committed stays; re-running is safe).
    A column named with a --*-col option must exist in the CSV header (exit 2 otherwise).
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.files.importer import ImportInterrupted, describe_error, import_file, log_debug_details
    from threadline.connectors.files.readers import CsvColumns, FileFormatError, printable

    if file_format not in (None, "jsonl", "csv"):
        raise fail(f"--format must be jsonl or csv, not {printable(file_format)!r}")
    given = {
        "text": text_col,
        "conversation_id": conversation_col,
        "message_id": message_col,
        "author": author_col,
        "created_at": time_col,
    }
    columns = CsvColumns(
        **{name: value for name, value in given.items() if value is not None},
        explicit=frozenset(name for name, value in given.items() if value is not None),
    )
    result, error, code = None, None, EXIT_CLEAN
    try:
        result = import_file(engine(), path, source_name=source, file_format=file_format, columns=columns)
    except FileFormatError as exc:
        error, code = str(exc), EXIT_UNUSABLE
    except ImportInterrupted as exc:
        result, code = exc.result, EXIT_INTERRUPTED
        error = (
            f"unexpected {describe_error(exc.cause)}; the import stopped (committed batches stay, re-running is safe)"
        )
    except Exception as exc:  # e.g. the database cannot be reached: one line, details only at DEBUG
        log_debug_details(exc, "import failed")
        error, code = f"unexpected {describe_error(exc)}; nothing was imported", EXIT_INTERRUPTED
    except KeyboardInterrupt:
        error, code = "interrupted; committed batches stay, re-running is safe", EXIT_INTERRUPTED
    if result is not None and code == EXIT_CLEAN and not result.report.clean:
        code = EXIT_SOME_REJECTED
    if as_json:
        emit_json(_import_report(source, path, file_format, result, error, code))
    else:
        _print_import(path, result)
    if error:
        raise fail(error, code)
    if code:
        raise typer.Exit(code)


def _import_report(source, path, file_format, result, error, code) -> dict:
    """The --json report; printed whatever happened (error is set when the import did not finish)."""
    report, stats = (result.report, result.stats) if result is not None else (None, None)
    return {
        "source": source,
        "file": str(path),
        "format": result.format if result is not None else file_format,
        "exit_code": code,
        "error": error,
        "valid_records": report.records if report else 0,
        "inserted": stats.inserted if stats else 0,
        "updated": stats.updated if stats else 0,
        "unchanged": stats.unchanged if stats else 0,
        "rejected": report.rejected if report else 0,
        "duplicates": report.duplicates_total if report else 0,
        "duplicate_ids": [
            {"id": d.record_id, "lines": list(d.lines), "kept_line": d.kept_line} for d in report.duplicates
        ]
        if report
        else [],
        "problems": [
            {"line": p.line, "id": p.record_id, "field": p.field, "reason": p.reason, "rejected": p.rejected}
            for p in report.problems
        ]
        if report
        else [],
        "problems_omitted": report.problems_omitted if report else 0,
        "notices": list(report.notices) if report else [],
    }


def _print_import(path: Path, result) -> None:
    """Problems, duplicates and notices on stderr, the summary on stdout; data is never read as markup."""
    from threadline.connectors.files.readers import printable

    if result is None:
        return
    report, stats = result.report, result.stats
    name = printable(path.name, 120)
    for notice in report.notices:
        err_console.print(plain((name, "yellow"), " note: ", notice), highlight=False)
    lines = [str(problem) for problem in report.problems]
    lines += [
        f"line {line} (id {d.record_id}): duplicate id, superseded by line {d.kept_line} (the last occurrence wins)"
        for d in report.duplicates
        for line in d.lines[:-1]
    ]
    for line in lines[:MAX_PRINTED_PROBLEMS]:
        err_console.print(plain((name, "yellow"), " ", line), highlight=False)
    hidden = report.problems_total + report.duplicates_total - min(len(lines), MAX_PRINTED_PROBLEMS)
    if hidden > 0:
        err_console.print(plain(f"... and {hidden} more (use --json for the full list)"), highlight=False)
    changed = report.problems_total - report.rejected - report.problems_omitted
    console.print(
        plain(
            f"{name}: {report.records} valid records: {stats.inserted} new, {stats.updated} updated, "
            f"{stats.unchanged} unchanged; {report.rejected} rejected, "
            f"{max(changed, 0)} imported with changes, {report.duplicates_total} superseded duplicates"
        ),
        highlight=False,
    )


CLI_QUOTE_CHARS = 90  # characters of the first quote in `threadline stories`: one table cell, cut at a word with "…"
RunOption = Annotated[int | None, typer.Option("--run", min=1, help="Show this run's snapshot.")]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", help="Scope: exactly these sources (repeatable); default: the latest run's scope."),
]
themes_app = typer.Typer(help="Themes of a run's snapshot, and curation: rename, merge, keep separate.")
stories_app = typer.Typer(help="Stories of a run's snapshot, their status and history.")
app.add_typer(themes_app, name="themes")
app.add_typer(stories_app, name="stories")


def _pick(session, run: int | None, sources: list[str] | None):
    """The run to show, or exit 2 with what to ask instead (unknown run or source, mismatched scope)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.read.views import ViewError, pick_run

    try:
        return pick_run(session, run_id=run, sources=sources)
    except ViewError as exc:
        raise fail(str(exc)) from None


def _describe(ref) -> str:
    """`run 7 (demo, star; 2026-09-01 to 2026-10-31)` for headers (never in the byte-stable report)."""
    period = ""
    if ref.period_start and ref.period_end:
        period = f"; {ref.period_start:%Y-%m-%d} to {ref.period_end:%Y-%m-%d}"
    legacy = "; predates snapshots" if not ref.snapshot else ""
    return f"run {ref.id} ({', '.join(ref.sources) or 'no source'}{period}{legacy})"


@themes_app.callback(invoke_without_command=True)
def themes_command(
    ctx: typer.Context,
    limit: LimitOption = 50,
    run: RunOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Themes of a run (default: the latest succeeded run of the latest scope), grouped two levels deep."""
    if ctx.invoked_subcommand is not None:
        return
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import read_scope
    from threadline.read.themes import theme_tree, unassigned_count

    with read_scope(engine()) as session:
        ref = _pick(session, run, source)
        tree = theme_tree(session, run_id=ref.id if ref else None, limit=limit)
        unassigned = unassigned_count(session, ref.id if ref else None)
    if as_json:
        emit_json(tree)
        return
    if ref is None:
        err_console.print("no succeeded run yet: `threadline run` first")
        return
    err_console.print(f"themes of {_describe(ref)}", markup=False, highlight=False)
    err_console.print(
        f"{unassigned} conversations in no theme (list them: threadline conversations --unassigned --run {ref.id})",
        markup=False,
        highlight=False,
    )
    table = Table("id", "group / theme", "size", "key phrases", "first seen", "last seen")
    for group in tree:
        table.add_row(str(group["id"] or ""), f"[bold]{escape(group['name'])}[/bold]", str(group["size"]), "", "", "")
        for theme in group["themes"]:
            marks = " (keep separate)" if theme["keep_separate"] else ""
            marks += f" (merged into {theme['merged_into']})" if theme["merged_into"] else ""
            table.add_row(
                str(theme["id"]),
                f"  {escape(theme['name'])}{marks}",
                str(theme["size"]),
                escape(", ".join(theme["keywords"][:4])),
                (theme["first_seen"] or "")[:10],
                (theme["last_seen"] or "")[:10],
            )
    console.print(table)


def _curate(action, *args) -> dict:
    """Run a curation function as the CLI actor; exit 2 (or 1 for a refusal) with its message."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.curation import CLI_ACTOR, CurationError

    try:
        with session_scope(engine()) as session:
            theme = action(session, *args, CLI_ACTOR)
            return {
                "id": theme.id,
                "human_name": theme.human_name,
                "keep_separate": theme.keep_separate,
                "merged_into": theme.merged_into_id,
            }
    except CurationError as exc:
        raise fail(str(exc), code=2 if exc.status in (404, 422) else 1) from None


@themes_app.command("rename")
def themes_rename(
    theme_id: Annotated[int, typer.Argument(help="Theme id (see `threadline themes`).")],
    name: Annotated[
        str, typer.Argument(help='The name to show for it from now on ("" to go back to the runs\' names).')
    ],
    as_json: JsonOption = False,
) -> None:
    """Give a theme a person's name: every snapshot shows it and later runs' stories use it."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.engine.curation import rename_theme

    result = _curate(rename_theme, theme_id, name)
    emit_json(result) if as_json else console.print(
        f"theme {theme_id} is now called {result['human_name'] or 'by its computed name'}", markup=False
    )


@themes_app.command("merge")
def themes_merge(
    theme_id: Annotated[int, typer.Argument(help="The theme to merge away.")],
    into: Annotated[int, typer.Option("--into", help="The theme that absorbs it (same scope).")],
    as_json: JsonOption = False,
) -> None:
    """Merge a theme into another of the same scope; later runs put its conversations in the other."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.engine.curation import merge_theme

    result = _curate(merge_theme, theme_id, into)
    emit_json(result) if as_json else console.print(f"theme {theme_id} merged into theme {into} (from the next run on)")


@themes_app.command("keep-separate")
def themes_keep_separate(
    theme_id: Annotated[int, typer.Argument(help="Theme id.")],
    off: Annotated[bool, typer.Option("--off", help="Remove the mark.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Mark a theme so later runs never merge it with another (or remove the mark with --off)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.engine.curation import set_keep_separate

    result = _curate(set_keep_separate, theme_id, not off)
    emit_json(result) if as_json else console.print(f"theme {theme_id}: keep separate {'on' if not off else 'off'}")


def _story_dicts(limit: int, run: int | None, source: list[str] | None) -> tuple[RunRef | None, list[dict]]:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import read_scope
    from threadline.read.stories import list_stories

    with read_scope(engine()) as session:
        ref = _pick(session, run, source)
        return ref, list_stories(session, run_id=ref.id if ref else None, limit=limit, offset=0)


def _not_recorded(ref) -> bool:
    """Tell the person when a run predates snapshots and its stories were not recorded (never silence)."""
    if ref is not None and not ref.snapshot:
        err_console.print(
            f"stories of run {ref.id} were not recorded: it predates snapshots (its themes keep their membership)",
            markup=False,
        )
        return True
    return False


@stories_app.callback(invoke_without_command=True)
def stories_command(
    ctx: typer.Context,
    limit: LimitOption = 20,
    run: RunOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ranked stories of a run (default: the latest succeeded run of the latest scope) with their first quote."""
    if ctx.invoked_subcommand is not None:
        return
    ref, stories = _story_dicts(limit, run, source)
    if as_json:
        if not stories:
            _not_recorded(ref)
        emit_json(stories)
        return
    if ref is None:
        err_console.print("no succeeded run yet: `threadline run` first")
        return
    err_console.print(f"stories of {_describe(ref)}", markup=False, highlight=False)
    if not stories and _not_recorded(ref):
        return
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.text.sentences import truncate_words

    table = Table("#", "id", "story", "status", "conv.", "cust.", "trend", "severity", "evidence")
    for story in stories:
        quote = story["evidence"][0]["quote"] if story["evidence"] else ""
        known = (story.get("priority") or {}).get("customers_known", story["customers"])
        table.add_row(
            str(story["rank"]),
            str(story["id"]),
            escape(story["title"]),
            story["status"],
            str(story["conversations"]),
            str(known) if known else "unknown",
            (story["trend"] or {}).get("direction", ""),
            story["severity"] or "",
            escape(f"\u201c{truncate_words(quote, CLI_QUOTE_CHARS)}\u201d") if quote else "",
        )
    console.print(table)


@stories_app.command("status")
def stories_status(
    story_id: Annotated[int, typer.Argument(help="Story id (see `threadline stories`).")],
    status: Annotated[str, typer.Argument(help="candidate, accepted, rejected or exported.")],
) -> None:
    """Set a story's status (recorded in its history; shown with every snapshot)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.curation import CLI_ACTOR, CurationError, update_story
    from threadline.read.stories import get_story

    try:
        with session_scope(engine()) as session:
            story = get_story(session, story_id)
            if story is None:
                raise fail(f"no story {story_id}")
            update_story(session, story, {"status": status}, CLI_ACTOR)
    except CurationError as exc:
        raise fail(str(exc)) from None
    console.print(f"story {story_id}: {status}")


@stories_app.command("history")
def stories_history(story_id: Annotated[int, typer.Argument(help="Story id.")], as_json: JsonOption = False) -> None:
    """A story's runs (rank and size in each snapshot) and what people did to it, newest first."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.stories import get_story, story_history, story_runs

    with session_scope(engine()) as session:
        if get_story(session, story_id) is None:
            raise fail(f"no story {story_id}")
        runs, events = story_runs(session, story_id), story_history(session, story_id)
    if as_json:
        emit_json({"id": story_id, "runs": runs, "history": events})
        return
    table = Table("run", "rank", "conversations", "title")
    for r in runs:
        table.add_row(str(r["run_id"]), str(r["rank"]), str(r["conversations"]), escape(r["title"] or ""))
    console.print(table)
    events_table = Table("when", "who", "what", "details")
    for e in events:
        events_table.add_row(e["at"][:19], escape(e["actor"]), e["action"], escape(str(e["details"]))[:100])
    console.print(events_table)


@app.command("conversations")
def conversations_command(
    unassigned: Annotated[
        bool, typer.Option("--unassigned", help="Only those the run read but placed in no theme (its outliers).")
    ] = False,
    limit: LimitOption = 50,
    run: RunOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Conversations, newest first; with --unassigned, those a run (default: the latest) placed in no theme."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.conversations import list_conversations
    from threadline.read.themes import unassigned_count

    with session_scope(engine()) as session:
        ref = _pick(session, run, source) if unassigned or run is not None or source else None
        if unassigned and ref is None:
            err_console.print("no succeeded run yet: `threadline run` first")
            if as_json:
                emit_json({"run_id": None, "unassigned": 0, "conversations": []})
            return
        run_id = ref.id if ref is not None and unassigned else None
        rows = list_conversations(session, limit=limit, offset=0, run_id=run_id, unassigned=unassigned)
        total = unassigned_count(session, run_id) if unassigned else None
    if as_json:
        emit_json({"run_id": run_id, "unassigned": total, "conversations": rows})
        return
    if unassigned and ref is not None:
        err_console.print(
            f"{total} conversations of {_describe(ref)} in no theme (newest {min(limit, total or 0)} shown)",
            markup=False,
            highlight=False,
        )
    table = Table("id", "conversation", "source", "created", "subject")
    for row in rows:
        table.add_row(
            str(row["id"]),
            escape(row["external_id"]),
            escape(row["source"]),
            f"{row['created_at']:%Y-%m-%d}" if row["created_at"] else "",
            escape(row["subject"] or ""),
        )
    console.print(table)


@app.command("report")
def report_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    report_format: Annotated[str, typer.Option("--format", help="md or csv.")] = "md",
    limit: LimitOption = 100,
    run: RunOption = None,
    source: SourceOption = None,
) -> None:
    """Write a run's ranked stories with their evidence to a Markdown or CSV file (recorded as an export)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.curation import CLI_ACTOR, record_exports
    from threadline.read.documentation import documentation
    from threadline.stories.export import report_title, to_csv, to_markdown

    if report_format not in ("md", "csv"):
        raise fail(f"--format must be md or csv, not {report_format!r}")
    ref, stories = _story_dicts(limit, run, source)
    if not stories:
        _not_recorded(ref)
    title = report_title(ref.sources, ref.period_start, ref.period_end) if ref else "Threadline report"
    docs = None
    if report_format == "md" and ref is not None:
        with session_scope(engine()) as session:
            docs = documentation(session, ref.id)
    text = to_markdown(stories, title=title, documentation=docs) if report_format == "md" else to_csv(stories)
    output.write_text(text, encoding="utf-8")
    with session_scope(engine()) as session:
        record_exports(session, [s["id"] for s in stories], CLI_ACTOR, run_id=ref.id if ref else None, target="report")
    console.print(f"wrote {len(stories)} stories to {output}", markup=False)


@app.command("changes")
def changes_command(run: RunOption = None, source: SourceOption = None, as_json: JsonOption = False) -> None:
    """What changed since the previous run of the scope: new, growing, shrinking and gone themes; stories."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.changes import changes

    with session_scope(engine()) as session:
        ref = _pick(session, run, source)
        if ref is None:
            raise fail("no succeeded run yet: `threadline run` first", code=1)
        found = changes(session, ref)
    if as_json:
        emit_json(found)
        return
    before = found["previous_run"]
    err_console.print(
        f"changes of {_describe(ref)} since "
        + (f"run {before['id']}" if before else "nothing (the first run of this scope)"),
        markup=False,
    )
    table = Table("change", "id", "theme", "before", "now", "per week before", "per week now")
    for key, label in (
        ("new_themes", "new"),
        ("returned_themes", "returned"),
        ("growing", "growing"),
        ("shrinking", "shrinking"),
        ("gone_themes", "gone"),
    ):
        for item in found[key]:
            merged = f" (merged into {item['merged_into']['id']})" if item.get("merged_into") else ""
            table.add_row(
                label,
                str(item["id"]),
                escape(item["name"]) + merged,
                str(item.get("size_before", "")),
                str(item.get("size", "")),
                str(item.get("rate_per_week_before", "")),
                str(item.get("rate_per_week", "")),
            )
    console.print(table)
    changed = found["stories"]["evidence_changed"]
    console.print(
        f"stories: {len(found['stories']['new'])} new, {len(found['stories']['dropped'])} dropped, "
        f"{len(changed)} with changed evidence",
        markup=False,
    )


GAP_EXAMPLES_SHOWN = 2  # example conversations printed per gap or article in the terminal (--json has all)


@app.command("gaps")
def gaps_command(run: RunOption = None, source: SourceOption = None, as_json: JsonOption = False) -> None:
    """Documentation gaps (questions no article answers) and confusing articles of a run, with example conversations."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.documentation import documentation

    with session_scope(engine()) as session:
        ref = _pick(session, run, source)
        if ref is None:
            raise fail("no succeeded run yet: `threadline run` first", code=1)
        found = documentation(session, ref.id)
    if as_json:
        emit_json(found)
        return
    err_console.print(f"documentation of {_describe(ref)}", markup=False, highlight=False)
    gaps = Table("rank", "theme", "conversations", "customers", "how-to", "examples", title="Gaps")
    for gap in found["gaps"]:
        gaps.add_row(
            str(gap["rank"]),
            plain(f"{gap['theme']} (#{gap['theme_id']})"),
            str(gap["conversations"]),
            str(gap["customers"]),
            f"{round(100 * gap['question_share'])}%",
            plain("\n".join(e["excerpt"] or "" for e in gap["examples"][:GAP_EXAMPLES_SHOWN])),
        )
    console.print(gaps)
    confusing = Table("rank", "article", "why", "customers", "examples", title="Confusing articles")
    for article in found["confusing_articles"]:
        confusing.add_row(
            str(article["rank"]),
            plain(article["title"] + (f"\n{article['url']}" if article["url"] else "")),
            plain(article["reason"] + (f" (theme {article['theme']})" if article["theme"] else "")),
            str(article["customers"]),
            plain("\n".join(e["excerpt"] or "" for e in article["examples"][:GAP_EXAMPLES_SHOWN])),
        )
    console.print(confusing)


@app.command("forget")
def forget_command(
    conversation: Annotated[
        list[str] | None,
        typer.Option("--conversation", help="SOURCE:EXTERNAL_ID of a conversation to erase (repeatable)."),
    ] = None,
    customer: Annotated[
        str | None, typer.Option("--customer", help="A customer's e-mail or external id: all their conversations.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Erase a customer's or conversations' text everywhere, snapshots included (right to erasure)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.engine.curation import CLI_ACTOR
    from threadline.engine.forget import ForgetError, forget

    pairs = []
    for item in conversation or []:
        source_name, sep, external_id = item.partition(":")
        if not sep or not source_name or not external_id:
            raise fail(f"--conversation takes SOURCE:EXTERNAL_ID, not {item!r}")
        pairs.append((source_name, external_id))
    if not pairs and not customer:
        raise fail("give --conversation SOURCE:ID (repeatable) and/or --customer EMAIL_OR_ID")
    if not yes and not typer.confirm("Erase this text everywhere, including past runs? This cannot be undone"):
        raise typer.Exit(1)
    try:
        with session_scope(engine()) as session:
            result = forget(session, conversations=pairs, customer=customer, actor=CLI_ACTOR)
    except ForgetError as exc:
        raise fail(str(exc), code=1) from None
    if as_json:
        emit_json(result.as_dict())
    else:
        console.print(
            f"erased {result.conversations} conversations ({result.messages} messages), {result.contacts} customer "
            f"records, {result.quotes} quotes in {result.story_snapshots} story snapshots, "
            f"{result.theme_snapshots} theme descriptions",
            markup=False,
        )


@app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """Sources, conversation counts and the latest runs."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import read_scope
    from threadline.read.status import status_summary

    with read_scope(engine()) as conn:
        summary = status_summary(conn)
    if as_json:
        emit_json(summary)
        return
    table = Table("source", "kind", "conversations", "messages")
    for source in summary["sources"]:
        table.add_row(source["name"], source["kind"], str(source["conversations"]), str(source["messages"]))
    console.print(table)
    runs = Table("run", "sources", "status", "phase", "conversations", "created", "finished")
    for run in summary["runs"]:
        runs.add_row(
            str(run["id"]),
            escape(", ".join(run["sources"])),
            run["status"],
            run["phase"] or "",
            str(run["conversations"]),
            (run["created_at"] or "")[:19],
            (run["finished_at"] or "")[:19],
        )
    console.print(runs)


runs.register(app)
evaluate.register(app)
serve.register(app)
sources.register(app)
trackers.register(app)
notify.register(app)
schedules.register(app)
knowledge.register(app)


EXIT_UNEXPECTED = 3  # any command: an unexpected error (e.g. the database went away) stopped it


def main() -> None:
    """The `threadline` command. An unexpected error ends as one line on stderr and exit 3, never a traceback.

    A traceback would print SQL parameters (customer text, contact details) and hide the one
    thing to do; the line names the error class and SQLSTATE only, details are logged at DEBUG.

    SIGTERM (a service manager, `docker stop`, `kill`) is handled like Ctrl-C: commands finish
    what they can, and the embedded server this process holds is released on exit. `serve` and
    `worker` install their own graceful handlers while they run; this covers the time before.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last boundary: everything not handled by a command
        # imported only when a command failed, not at start-up
        from threadline.connectors.files.importer import describe_error, log_debug_details

        log_debug_details(exc, "command failed")
        hint = "a run left running continues with `threadline runs resume ID` once the database is back"
        err_console.print(plain(("error:", "red"), " ", f"unexpected {describe_error(exc)}; {hint}"))
        raise SystemExit(EXIT_UNEXPECTED) from None


if __name__ == "__main__":
    main()

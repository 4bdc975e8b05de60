"""The `threadline` command: import, run, read the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from threadline.cli import evaluate, runs, serve, sources
from threadline.cli.common import LimitOption, console, emit_json, engine, err_console, fail, plain, setup_logging

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


EXIT_CLEAN, EXIT_SOME_REJECTED, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 3  # `threadline import` exit codes
MAX_PRINTED_PROBLEMS = 200  # problem lines printed on the terminal; --json lists them all (up to the report bound)


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


@app.command("themes")
def themes_command(limit: LimitOption = 50, as_json: JsonOption = False) -> None:
    """Themes of the latest run, grouped two levels deep."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.themes import theme_tree

    with session_scope(engine()) as session:
        tree = theme_tree(session, limit=limit)
    if as_json:
        emit_json(tree)
        return
    table = Table("group / theme", "size", "key phrases", "first seen", "last seen")
    for group in tree:
        table.add_row(f"[bold]{group['name']}[/bold]", str(group["size"]), "", "", "")
        for theme in group["themes"]:
            table.add_row(
                f"  {theme['name']}",
                str(theme["size"]),
                ", ".join(theme["keywords"][:4]),
                (theme["first_seen"] or "")[:10],
                (theme["last_seen"] or "")[:10],
            )
    console.print(table)


def _story_dicts(limit: int) -> list[dict]:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.stories import list_stories

    with session_scope(engine()) as session:
        return list_stories(session, limit=limit, offset=0)


@app.command("stories")
def stories_command(limit: LimitOption = 20, as_json: JsonOption = False) -> None:
    """Ranked stories of the latest run with their first evidence quote."""
    stories = _story_dicts(limit)
    if as_json:
        emit_json(stories)
        return
    table = Table("#", "story", "conv.", "cust.", "trend", "severity", "evidence")
    for story in stories:
        quote = story["evidence"][0]["quote"] if story["evidence"] else ""
        table.add_row(
            str(story["rank"]),
            story["title"],
            str(story["conversations"]),
            str(story["customers"]),
            (story["trend"] or {}).get("direction", ""),
            story["severity"] or "",
            f"\u201c{quote[:90]}\u201d",
        )
    console.print(table)


@app.command("report")
def report_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    report_format: Annotated[str, typer.Option("--format", help="md or csv.")] = "md",
    limit: LimitOption = 100,
) -> None:
    """Write the ranked stories with their evidence to a Markdown or CSV file."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.stories.export import to_csv, to_markdown

    if report_format not in ("md", "csv"):
        raise fail(f"--format must be md or csv, not {report_format!r}")
    stories = _story_dicts(limit)
    output.write_text(to_markdown(stories) if report_format == "md" else to_csv(stories), encoding="utf-8")
    console.print(f"wrote {len(stories)} stories to {output}")


@app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """Sources, conversation counts and the latest runs."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.status import status_summary

    with session_scope(engine()) as session:
        summary = status_summary(session)
    if as_json:
        emit_json(summary)
        return
    table = Table("source", "kind", "conversations", "messages")
    for source in summary["sources"]:
        table.add_row(source["name"], source["kind"], str(source["conversations"]), str(source["messages"]))
    console.print(table)
    runs = Table("run", "status", "phase", "conversations", "created", "finished")
    for run in summary["runs"]:
        runs.add_row(
            str(run["id"]),
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()

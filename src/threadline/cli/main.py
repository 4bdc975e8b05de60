"""The `threadline` command: import, run, read the results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from threadline.cli import evaluate, runs, serve, sources
from threadline.cli.common import console, emit_json, engine, err_console, fail, setup_logging
from threadline.config import MAX_LIST_LIMIT

app = typer.Typer(
    name="threadline",
    help="Turn customer-support conversations into evidence-backed product backlog stories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=MAX_LIST_LIMIT, help="Rows to show.")]


@app.callback()
def _main() -> None:
    setup_logging()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (also done automatically on first use)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.migrate import current_revisions

    console.print(f"database at revision {', '.join(sorted(current_revisions(engine()))) or '(none)'}")


@app.command("import")
def import_command(
    path: Annotated[
        Path, typer.Argument(help="A .jsonl (one conversation per line) or .csv (one message per row) file.")
    ],
    source: Annotated[str, typer.Option("--source", help="Source name to import into.")] = "default",
    file_format: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the extension).")
    ] = None,
    text_col: Annotated[str, typer.Option(help="CSV: message text column.")] = "text",
    conversation_col: Annotated[
        str, typer.Option(help="CSV: conversation id column (absent: one conversation per row).")
    ] = "conversation_id",
    message_col: Annotated[str, typer.Option(help="CSV: message id column.")] = "message_id",
    author_col: Annotated[str, typer.Option(help="CSV: author role column (absent: customer).")] = "author",
    time_col: Annotated[str, typer.Option(help="CSV: message time column (ISO-8601 with offset).")] = "created_at",
    as_json: JsonOption = False,
) -> None:
    """Import conversations; invalid records are reported by line and skipped, the rest imported.

    Exit code 0: everything imported as is; 1: some records were rejected or truncated; 2: the file
    as a whole could not be read (nothing written).
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.files.importer import import_file
    from threadline.connectors.files.readers import CsvColumns, FileFormatError

    if file_format not in (None, "jsonl", "csv"):
        raise fail(f"--format must be jsonl or csv, not {file_format!r}")
    columns = CsvColumns(
        text=text_col, conversation_id=conversation_col, message_id=message_col, author=author_col, created_at=time_col
    )
    try:
        result = import_file(engine(), path, source_name=source, file_format=file_format, columns=columns)
    except FileFormatError as exc:
        raise fail(str(exc)) from None
    report, stats = result.report, result.stats
    if as_json:
        emit_json(
            {
                "source": source,
                "file": str(path),
                "format": result.format,
                "valid_records": report.records,
                "inserted": stats.inserted,
                "updated": stats.updated,
                "unchanged": stats.unchanged,
                "duplicates": stats.duplicates_in_batch,
                "rejected": report.rejected,
                "problems": [
                    {"line": p.line, "id": p.record_id, "reason": p.reason, "rejected": p.rejected}
                    for p in report.problems
                ],
            }
        )
    else:
        for problem in report.problems[:200]:
            err_console.print(f"[yellow]{path.name}[/yellow] {problem}", markup=True, highlight=False)
        if len(report.problems) > 200:
            err_console.print(f"... and {len(report.problems) - 200} more problems (use --json for all)")
        console.print(
            f"{path.name}: {report.records} valid records: {stats.inserted} new, {stats.updated} updated, "
            f"{stats.unchanged} unchanged; {report.rejected} rejected, "
            f"{len(report.problems) - report.rejected} imported with changes"
        )
    if report.problems:
        raise typer.Exit(1)


@app.command("themes")
def themes_command(limit: LimitOption = 50, as_json: JsonOption = False) -> None:
    """Themes of the latest run, grouped two levels deep."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from rich.markup import escape

    from threadline.db.engine import session_scope
    from threadline.read.themes import theme_tree
    from threadline.text.pii import mask_for_display

    with session_scope(engine()) as session:
        tree = theme_tree(session, limit=limit)
    if as_json:
        emit_json(
            [
                {
                    **group,
                    "name": mask_for_display(group["name"]),
                    "themes": [
                        {
                            **t,
                            "name": mask_for_display(t["name"]),
                            "keywords": [mask_for_display(k) for k in t["keywords"]],
                        }
                        for t in group["themes"]
                    ],
                }
                for group in tree
            ]
        )
        return
    table = Table("group / theme", "size", "key phrases", "first seen", "last seen")
    for group in tree:
        table.add_row(f"[bold]{escape(mask_for_display(group['name']))}[/bold]", str(group["size"]), "", "", "")
        for theme in group["themes"]:
            table.add_row(
                f"  {escape(mask_for_display(theme['name']))}",
                str(theme["size"]),
                escape(mask_for_display(", ".join(theme["keywords"][:4]))),
                (theme["first_seen"] or "")[:10],
                (theme["last_seen"] or "")[:10],
            )
    console.print(table)


CLI_QUOTE_CHARS = 90  # characters of the first quote in `threadline stories`: one table cell, cut at a word with "…"


def _story_dicts(limit: int) -> list[dict]:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.read.stories import list_stories

    with session_scope(engine()) as session:
        return list_stories(session, limit=limit, offset=0)


@app.command("stories")
def stories_command(limit: LimitOption = 20, as_json: JsonOption = False) -> None:
    """Ranked stories of the latest run with their first evidence quote."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from rich.markup import escape

    from threadline.stories.export import masked_story
    from threadline.text.pii import mask_for_display
    from threadline.text.sentences import truncate_words

    stories = _story_dicts(limit)
    if as_json:
        emit_json([masked_story(s) for s in stories])
        return
    table = Table("#", "story", "conv.", "cust.", "trend", "severity", "evidence")
    for story in stories:
        quote = mask_for_display(story["evidence"][0]["quote"]) if story["evidence"] else ""
        known = (story.get("priority") or {}).get("customers_known", story["customers"])
        table.add_row(
            str(story["rank"]),
            escape(mask_for_display(story["title"])),
            str(story["conversations"]),
            str(known) if known else "unknown",
            (story["trend"] or {}).get("direction", ""),
            story["severity"] or "",
            escape(f"\u201c{truncate_words(quote, CLI_QUOTE_CHARS)}\u201d") if quote else "",
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

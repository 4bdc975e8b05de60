"""`threadline eval`: how well discovery groups a labelled file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from threadline.cli.common import console, emit_json, fail


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)


def eval_command(
    path: Annotated[Path, typer.Argument(help="Labelled conversations (.jsonl or .csv).")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: from the extension).")
    ] = None,
    text_col: Annotated[str, typer.Option(help="CSV: text column.")] = "text",
    conversation_col: Annotated[
        str, typer.Option(help="CSV: conversation id column (absent: one per row).")
    ] = "conversation_id",
    label_col: Annotated[str | None, typer.Option(help="CSV: label column (read only after the run).")] = None,
    label_path: Annotated[str | None, typer.Option(help="JSONL: dotted path of the label, e.g. labels.task.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Import into a scratch database, run discovery as a normal run does, then score it against the labels."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.files.readers import CsvColumns, FileFormatError
    from threadline.eval.runner import EvalError, evaluate

    try:
        result = evaluate(
            path,
            file_format=file_format,
            columns=CsvColumns(text=text_col, conversation_id=conversation_col),
            label_col=label_col,
            label_path=label_path,
        )
    except (EvalError, FileFormatError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit_json(result)
        return
    table = Table("metric", "value")
    for key in (
        "n_items",
        "n_labels",
        "n_themes",
        "unassigned_share",
        "nmi",
        "ari",
        "accuracy",
        "pairwise_precision",
        "pairwise_recall",
        "pairwise_f1",
        "wall_seconds",
        "peak_rss_mib",
    ):
        table.add_row(key, str(result[key]))
    console.print(table)

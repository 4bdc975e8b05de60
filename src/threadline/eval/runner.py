"""`threadline eval`: discovery quality on a labelled file, measured the way a run works.

The file is imported into a scratch database, a normal run is executed on it, and only
then are the labels read back from the file (never from the database, never before the
run) and compared with the themes the run produced.
"""

from __future__ import annotations

import csv
import json
import resource
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from threadline.ai.embeddings import get_embedder
from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.connectors.files.readers import CsvColumns, detect_format
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, RunTheme, ThemeMember
from threadline.db.scratch import scratch_engine
from threadline.engine.runs import create_run, execute_run
from threadline.eval.metrics import naming_agreement, summary
from threadline.themes.naming import name_words


class EvalError(ValueError):
    """The labels could not be read as described."""


def read_labels(
    path: Path, file_format: str, *, label_col: str | None, label_path: str | None, conversation_col: str
) -> dict[str, str]:
    """External id -> label, read from the file after the run."""
    labels: dict[str, str] = {}
    if file_format == "csv":
        if not label_col:
            raise EvalError("CSV files need --label-col")
        csv.field_size_limit(get_settings().input.max_csv_field_bytes)
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if label_col not in (reader.fieldnames or []):
                raise EvalError(f"no {label_col!r} column in {path}")
            grouped = conversation_col in (reader.fieldnames or [])
            for row in reader:
                key = row[conversation_col].strip() if grouped else f"row-{reader.line_num}"
                labels[key] = row[label_col]
        return labels
    keys = (label_path or "").split(".")
    if not keys or not keys[0]:
        raise EvalError("JSONL files need --label-path (e.g. labels.task)")
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            value: Any = record
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                labels[str(record["id"])] = str(value)
    return labels


def _check_label_options(path: Path, file_format: str, label_col: str | None, label_path: str | None) -> None:
    """Fail before any work when the labels are not described (only the CSV header is read)."""
    if file_format == "csv":
        if not label_col:
            raise EvalError("CSV files need --label-col")
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        if label_col not in header:
            raise EvalError(f"no {label_col!r} column in {path}")
    elif not label_path:
        raise EvalError("JSONL files need --label-path (e.g. labels.task)")


def evaluate(
    path: Path,
    *,
    file_format: str | None = None,
    columns: CsvColumns = CsvColumns(),
    label_col: str | None = None,
    label_path: str | None = None,
) -> dict[str, Any]:
    """Import `path` into a scratch database, run, then score themes against the labels."""
    file_format = file_format or detect_format(path)
    _check_label_options(path, file_format, label_col, label_path)
    started = time.perf_counter()
    with scratch_engine(prefix="threadline_eval") as engine:
        imported = import_file(engine, path, source_name="eval", file_format=file_format, columns=columns)
        embedder = get_embedder()
        with session_scope(engine) as session:
            run_id = create_run(session, source="eval").id
        run_started = time.perf_counter()
        run = execute_run(engine, run_id, embedder)
        run_seconds = time.perf_counter() - run_started
        with session_scope(engine) as session:
            external = dict(session.execute(select(Conversation.id, Conversation.external_id)).all())
            assigned = dict(
                session.execute(
                    select(ThemeMember.conversation_id, ThemeMember.theme_id).where(ThemeMember.run_id == run_id)
                ).all()
            )
            theme_names = dict(
                session.execute(
                    select(RunTheme.theme_id, RunTheme.name).where(
                        RunTheme.run_id == run_id, RunTheme.theme_id.in_(set(assigned.values()))
                    )
                ).all()
            )
    wall = time.perf_counter() - started
    labels = read_labels(
        path, file_format, label_col=label_col, label_path=label_path, conversation_col=columns.conversation_id
    )
    ids = [cid for cid in sorted(external) if external[cid] in labels]
    if not ids:
        raise EvalError("no imported conversation has a label")
    true = [labels[external[cid]] for cid in ids]
    theme_index = {theme: i for i, theme in enumerate(sorted(set(assigned.values())))}
    pred = np.array([theme_index[assigned[cid]] if cid in assigned else -1 for cid in ids], dtype=np.int64)
    result = summary(true, pred)
    members: dict[int, list[str]] = {}
    for cid in ids:
        if cid in assigned:
            members.setdefault(assigned[cid], []).append(labels[external[cid]])
    themes: list[dict[str, Any]] = []
    dominant: dict[int, str] = {}
    for theme_id in sorted(members):
        label, count = Counter(members[theme_id]).most_common(1)[0]
        dominant[theme_id] = label
        themes.append(
            {
                "theme_id": theme_id,
                "name": theme_names.get(theme_id, ""),
                "size": len(members[theme_id]),
                "dominant_label": label,
                "dominant_share": round(count / len(members[theme_id]), 4),
            }
        )
    naming = naming_agreement({t: theme_names.get(t) or "" for t in dominant}, dominant, true, embedder.embed)
    words = [name_words(str(t["name"])) for t in themes]
    naming["name_words"] = {"min": min(words, default=0), "max": max(words, default=0)}
    result.update(themes=themes, naming=naming)
    result.update(
        file=str(path),
        imported=imported.stats.inserted,
        rejected=imported.report.rejected,
        run_status=run.status,
        run_seconds=round(run_seconds, 2),
        wall_seconds=round(wall, 2),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        counters=run.counters,
    )
    return result

"""How a run's per-conversation work is cut into batch jobs."""

from __future__ import annotations

import json

from sqlalchemy import text

from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.engine.lifecycle import advance, default_batch_size, split_by_characters
from threadline.engine.runs import create_run

SETTINGS = get_settings().engine
MAX_BATCH_SIZE = SETTINGS.max_batch_size
LOCAL_BATCH_CHARS = SETTINGS.local_batch_chars
MODEL_INPUT_CHARS = SETTINGS.model_input_chars


def _check_partition(batches: list[list[int]], ids: list[int]) -> None:
    assert [cid for batch in batches for cid in batch] == ids  # every id once, order kept
    assert all(batch for batch in batches)


def test_short_texts_fill_batches_up_to_the_count_cap() -> None:
    ids = list(range(2_500))
    batches = split_by_characters(ids, [60] * len(ids), SETTINGS)
    _check_partition(batches, ids)
    assert [len(b) for b in batches] == [MAX_BATCH_SIZE, MAX_BATCH_SIZE, 500]


def test_long_texts_count_only_what_the_model_reads() -> None:
    ids = list(range(300))
    batches = split_by_characters(ids, [50_000] * len(ids), SETTINGS)  # each counts MODEL_INPUT_CHARS, not 50,000
    _check_partition(batches, ids)
    per_batch = LOCAL_BATCH_CHARS // MODEL_INPUT_CHARS
    assert [len(b) for b in batches[:-1]] == [per_batch] * (len(batches) - 1)


def test_mixed_lengths_stay_within_the_character_budget() -> None:
    lengths = [10, 500, 1_900, 30, 2_000, 70_000, 0, 1_234] * 200
    ids = list(range(len(lengths)))
    batches = split_by_characters(ids, lengths, SETTINGS)
    _check_partition(batches, ids)
    for batch in batches:
        cost = sum(min(max(lengths[i], 1), MODEL_INPUT_CHARS) for i in batch)
        assert cost <= LOCAL_BATCH_CHARS and len(batch) <= MAX_BATCH_SIZE


def test_local_stages_are_sized_by_characters_provider_stages_by_count() -> None:
    assert default_batch_size("embed", SETTINGS) is None and default_batch_size("sleep", SETTINGS) is None
    assert default_batch_size("facets", SETTINGS) == SETTINGS.provider_batch_size


def _batch_job_sizes(engine) -> list[int]:
    with session_scope(engine) as session:
        args = session.execute(
            text("SELECT args FROM procrastinate_jobs WHERE task_name = 'threadline.batch' ORDER BY id")
        ).scalars()
        return [len(a["ids"]) for a in args]


def test_a_run_cuts_its_embed_work_by_characters_and_keeps_an_explicit_batch_size(db_engine, tmp_path) -> None:
    path = tmp_path / "mixed.jsonl"
    with path.open("w") as handle:
        for i in range(120):
            words = "word " * (10 if i % 2 else 600)  # 50 or 3,000 characters of customer text
            record = {
                "id": f"c{i}",
                "created_at": "2026-10-01T09:00:00+00:00",
                "messages": [{"author": "customer", "text": f"Problem {i}: {words}"}],
            }
            handle.write(json.dumps(record) + "\n")
    assert import_file(db_engine, path, source_name="mixed").ok

    with session_scope(db_engine) as session:
        run_id, generation = (run := create_run(session, source="mixed", phases=("embed",))).id, run.generation
    with session_scope(db_engine) as session:
        advance(session, run_id, generation)
    sizes = _batch_job_sizes(db_engine)
    # Shortest first: the 60 short texts (~62 characters each, ~3,700 in all) and 48 long ones
    # (each counted as MODEL_INPUT_CHARS = 2,000) fill the first job's 100,000; 12 long ones remain.
    assert sizes == [108, 12]

    with session_scope(db_engine) as session:
        session.execute(text("DELETE FROM procrastinate_jobs"))
        run_id, generation = (
            (run := create_run(session, source="mixed", phases=("embed",), batch_size=25)).id,
            run.generation,
        )
    with session_scope(db_engine) as session:
        advance(session, run_id, generation)
    assert _batch_job_sizes(db_engine) == [25, 25, 25, 25, 20]

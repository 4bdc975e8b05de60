"""The stories stage embeds each evidence sentence once, and never one the embed stage already embedded."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sqlalchemy import select
from threadpoolctl import threadpool_info

from threadline.ai.embeddings import set_process_embedder
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import RunStory, RunStoryEvidence
from threadline.engine.runs import create_run, execute_run
from threadline.stages.inputs import load_customer_texts
from threadline.stages.stories import build_stories

# One-sentence questions (like a short-message data set): each conversation's whole customer text is one sentence.
TOPICS = {
    "card_arrival": [
        "My new card has still not arrived after two weeks",
        "When will my card arrive, it has been ten days",
        "The card you sent me never arrived at my address",
        "I ordered a card a month ago and it has not arrived",
        "How long does it take for a new card to arrive",
        "My replacement card still has not been delivered",
        "Where is my card, it should have arrived by now",
        "The card I ordered last week has not arrived yet",
    ],
    "top_up_failed": [
        "My top up failed and the money is gone",
        "Why did my top up fail this morning",
        "I tried to top up with my bank card but it failed",
        "The top up did not go through and shows an error",
        "Top up keeps failing when I use my debit card",
        "My attempt to top up the account was declined",
        "I cannot top up my account, the payment fails",
        "Topping up failed twice today, what is wrong",
    ],
    "exchange_rate": [
        "The exchange rate you charged me is wrong",
        "Why is the exchange rate so bad on my transfer",
        "I was given a terrible exchange rate for euros",
        "Which exchange rate do you use for foreign payments",
        "The currency exchange rate applied is not the market rate",
        "My payment abroad used a poor exchange rate",
        "Can you explain the exchange rate on my card payment",
        "The exchange rate on my statement looks incorrect",
    ],
}


class RecordingEmbedder:
    """The real embedder, recording every text it is asked to embed and the BLAS threads allowed meanwhile."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimensions = inner.dimensions
        self.texts: list[str] = []
        self.blas_threads: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        self.blas_threads.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return self.inner.embed(texts)


def _write_csv(path: Path, follow_up: str = "") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for category, texts in TOPICS.items():
            for text in texts:
                writer.writerow([f"{text}. {follow_up}" if follow_up else text, category])
    return path


def _evidence(session, run_id: int) -> list[tuple[int, str, int]]:
    rows = session.execute(
        select(RunStory.theme_id, RunStoryEvidence.quote, RunStoryEvidence.conversation_id)
        .join(RunStoryEvidence, RunStoryEvidence.run_story_id == RunStory.id)
        .where(RunStory.run_id == run_id)
        .order_by(RunStory.theme_id, RunStoryEvidence.position)
    )
    return [tuple(row) for row in rows]


def test_whole_text_sentences_reuse_the_conversation_vector(db_engine, embedder, tmp_path: Path) -> None:
    import_file(db_engine, _write_csv(tmp_path / "short.csv"), source_name="short")
    with session_scope(db_engine) as session:
        run_id = create_run(session, source="short", phases=["embed", "themes", "stories"]).id
    run = execute_run(db_engine, run_id, embedder)
    assert run.status == "succeeded" and run.counters["stories"]["stories"] >= 2
    with session_scope(db_engine) as session:
        written = _evidence(session, run_id)
        whole_texts = set(load_customer_texts(session, run_id=run_id).values())
        recording = RecordingEmbedder(embedder)
        build_stories(session, run_id, model=embedder.model_name, embedder=recording)
        assert _evidence(session, run_id) == written  # the same quotes as when the stage ran in the pipeline
        session.rollback()
    assert written
    # Every candidate sentence here is a whole conversation: its vector is read back, none is embedded again.
    assert not whole_texts & set(recording.texts)
    assert len(recording.texts) == len(set(recording.texts))


def test_the_stories_stage_runs_its_small_products_on_one_blas_thread(db_engine, embedder, tmp_path: Path) -> None:
    # Two sentences per conversation: the stories stage embeds the evidence sentences, recording the BLAS limit then.
    path = _write_csv(tmp_path / "two.csv", follow_up="Please look into this for me today")
    import_file(db_engine, path, source_name="two")
    recording = RecordingEmbedder(embedder)
    with session_scope(db_engine) as session:
        run_id = create_run(session, source="two", phases=["embed", "themes", "stories"]).id
    try:
        run = execute_run(db_engine, run_id, recording)
    finally:
        set_process_embedder(None)
    assert run.status == "succeeded" and run.counters["stories"]["stories"] >= 2
    assert recording.blas_threads[-1] == 1  # the last call is the stories stage's evidence sentences

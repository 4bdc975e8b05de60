"""The facets stage on the real database: verbatim quotes stored, zero calls on a cached rerun."""

from __future__ import annotations

import json

from llm_helpers import KEY_ENV, settings_for
from sqlalchemy import select

from threadline.ai.llm.runtime import LLMRuntime
from threadline.config import LLMSettings, Settings
from threadline.connectors.files.importer import import_file
from threadline.db.models import Analysis, Conversation, Message
from threadline.stages.facets import facet_conversations


def _import_sample(db_engine, tmp_path, count: int = 12):
    from support import EXAMPLES

    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join(EXAMPLES.read_text(encoding="utf-8").splitlines(keepends=True)[:count]), encoding="utf-8")
    import_file(db_engine, subset, source_name="llm")


def test_facets_are_stored_with_verbatim_quotes_and_a_rerun_makes_no_calls(
    db_engine, db_session, tmp_path, standin, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, standin.api_key)
    _import_sample(db_engine, tmp_path)
    ids = list(db_session.execute(select(Conversation.id).order_by(Conversation.id)).scalars())
    runtime = LLMRuntime(settings_for(standin))
    try:
        first = facet_conversations(db_session, ids, runtime)
        db_session.commit()
        assert first.computed == len(ids) and not first.failed and first.input_tokens > 0
        calls = standin.state.counters["requests"]
        rows = db_session.execute(select(Analysis).where(Analysis.stage == "facets")).scalars().all()
        assert len(rows) == len(ids) and all(r.input_tokens > 0 for r in rows)
        for row in rows:
            for quote in row.output["quotes"]:
                text = db_session.get(Message, int(quote["message_id"])).text
                assert " ".join(quote["text"].split()) in " ".join(text.split())

        second = facet_conversations(db_session, ids, runtime)
        assert second.computed == 0 and second.reused == len(ids)
        assert standin.state.counters["requests"] == calls  # cached: zero calls
    finally:
        runtime.close()


def _configured_from(monkeypatch, environ: dict[str, str]) -> LLMSettings | None:
    """The LLM settings a process with exactly these THREADLINE_LLM_* / key variables would use."""
    for name in ("THREADLINE_LLM_BASE_URL", "OPENAI_API_KEY", "THREADLINE_LLM_MODELS__FACETS", "THREADLINE_LLM_PRICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return Settings().configured_llm()


def test_llm_path_is_opt_in(monkeypatch):
    assert _configured_from(monkeypatch, {"OPENAI_API_KEY": "sk-test"}) is None  # a key alone never starts paid calls
    assert _configured_from(monkeypatch, {"THREADLINE_LLM_BASE_URL": "http://127.0.0.1:9/v1"}) is None  # no key
    settings = _configured_from(
        monkeypatch,
        {
            "THREADLINE_LLM_BASE_URL": "http://127.0.0.1:9/v1",
            "OPENAI_API_KEY": "sk-test",
            "THREADLINE_LLM_MODELS__FACETS": "small",
            "THREADLINE_LLM_PRICES": json.dumps({"small": {"input_per_million": 0.1, "output_per_million": 0.4}}),
        },
    )
    assert (
        settings is not None and settings.models.facets == "small" and settings.prices["small"].input_per_million == 0.1
    )

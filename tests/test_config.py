"""The settings tree: one place for every limit, documented in the README, read at use, never via os.environ."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

import threadline
from threadline import config
from threadline.config import PipelineSettings, Settings, get_settings
from threadline.server.params import LimitQuery, Page

SOURCE = Path(threadline.__file__).resolve().parent
README = config.default_readme()

# Words a numeric setting's unit must contain: "characters per message", "seconds", "share of ...".
UNIT_WORDS = (
    "articles",
    "attempts",
    "bytes",
    "calls",
    "characters",
    "connections",
    "cosine similarity",
    "cosine",
    "conversations",
    "criteria",
    "currency",
    "evidence items",
    "external ids",
    "fetches",
    "jobs",
    "levels",
    "links",
    "memberships",
    "messages",
    "nice level",
    "pages",
    "problems",
    "passages",
    "passes",
    "points",
    "port",
    "processes",
    "quotes",
    "redirects",
    "requests",
    "rows",
    "sessions",
    "seconds",
    "share",
    "stories",
    "texts",
    "threads",
    "tokens",
    "year",
)
DESCRIPTION = re.compile(r"^(?P<unit>[^:]{2,80}): (?P<reason>\S.{9,})$", re.S)


def test_readme_configuration_section_is_the_rendered_tree():
    section = config.readme_section(README.read_text(encoding="utf-8"))
    assert section is not None, f"README.md lacks the {config.README_BEGIN!r} ... {config.README_END!r} markers"
    assert section == config.configuration_markdown(), (
        f"README.md's configuration section differs from the settings tree; run `{config.WRITE_README_COMMAND}`"
    )


def test_every_setting_has_a_unit_and_a_reason():
    fields = list(config.setting_fields())
    assert len(fields) > 80  # every group is rendered, nested models expanded
    problems = []
    for group, variable, info in fields:
        match = DESCRIPTION.match(info.description or "")
        if match is None:
            problems.append(f"{group} {variable}: description is not 'unit: meaning and reason'")
            continue
        numeric = info.annotation in (int, float) or str(info.annotation) in ("float | None", "int | None")
        if numeric and not any(word in match["unit"] for word in UNIT_WORDS):
            problems.append(f"{group} {variable}: unit {match['unit']!r} names no unit")
    assert not problems, "\n".join(problems)


def test_groups_have_their_own_prefix_and_engine_keeps_its_documented_names():
    for name, cls, _ in config.setting_groups():
        prefix = cls.model_config["env_prefix"]
        if name in ("general", "engine"):
            assert prefix == "THREADLINE_"
        else:
            assert prefix == f"THREADLINE_{name.upper()}_", name
    variables = [variable for _, variable, _ in config.setting_fields()]
    assert len(variables) == len(set(variables)), "two settings share an environment variable"


VARIABLE = re.compile(r"\bTHREADLINE_[A-Z0-9_]*[A-Z0-9]\b")


def test_every_variable_the_readme_or_the_code_mentions_exists():
    """Prose, help texts and messages naming THREADLINE_X are checked too: a renamed setting leaves no dead name."""
    known = {variable for _, variable, _ in config.setting_fields()}
    test_hooks = {"THREADLINE_FAULTS"}  # the test package's fault injection, documented in the README
    mentioned = {(name, "README.md") for name in VARIABLE.findall(README.read_text(encoding="utf-8"))}
    for path in SOURCE.rglob("*.py"):
        mentioned |= {(name, path.name) for name in VARIABLE.findall(path.read_text(encoding="utf-8"))}
    assert {(name, where) for name, where in mentioned if name not in known | test_hooks} == set()


OVERRIDES = {
    "general": ("THREADLINE_LOG_LEVEL", "DEBUG", lambda s: s.log_level, "DEBUG"),
    "database": ("THREADLINE_DATABASE_POOL_SIZE", "3", lambda s: s.database.pool_size, 3),
    "engine": ("THREADLINE_MAX_ITEM_ATTEMPTS", "2", lambda s: s.engine.max_item_attempts, 2),
    "input": ("THREADLINE_INPUT_MAX_MESSAGE_CHARS", "1234", lambda s: s.input.max_message_chars, 1234),
    "pipeline": ("THREADLINE_PIPELINE_MIN_STORY_CONVERSATIONS", "9", lambda s: s.pipeline.min_story_conversations, 9),
    "read": ("THREADLINE_READ_MAX_LIST_LIMIT", "77", lambda s: s.read.max_list_limit, 77),
    "api": ("THREADLINE_API_TOKEN_CACHE_TTL_S", "0.5", lambda s: s.api.token_cache_ttl_s, 0.5),
    "intercom": ("THREADLINE_INTERCOM_OVERLAP_S", "60", lambda s: s.intercom.overlap_s, 60),
    "zendesk": ("THREADLINE_ZENDESK_EXPORT_PAGE_SIZE", "200", lambda s: s.zendesk.export_page_size, 200),
    "embedding": ("THREADLINE_EMBEDDING_MIN_COSINE", "0.99", lambda s: s.embedding.min_cosine, 0.99),
    "insight": ("THREADLINE_INSIGHT_MASK_PERSONAL_DATA", "false", lambda s: s.insight.mask_personal_data, False),
    "trackers": ("THREADLINE_TRACKERS_MAX_ATTEMPTS", "3", lambda s: s.trackers.max_attempts, 3),
    "notify": ("THREADLINE_NOTIFY_GROWTH_RATE", "0.25", lambda s: s.notify.growth_rate, 0.25),
    "knowledge": ("THREADLINE_KNOWLEDGE_MAX_PAGES", "7", lambda s: s.knowledge.max_pages, 7),
    "llm": ("THREADLINE_LLM_MODELS__FACETS", "local-model", lambda s: s.llm.models.facets, "local-model"),
}


def test_overrides_cover_every_group():
    assert set(OVERRIDES) == {name for name, _, _ in config.setting_groups()}


@pytest.mark.parametrize("group", sorted(OVERRIDES))
def test_an_environment_variable_overrides_a_field_of_each_group(monkeypatch, group):
    variable, value, read, expected = OVERRIDES[group]
    assert read(get_settings()) != expected
    monkeypatch.setenv(variable, value)
    assert read(get_settings()) != expected  # read once per process: a cached tree ignores later changes
    get_settings.cache_clear()
    assert read(get_settings()) == expected


def test_invalid_values_are_refused(monkeypatch):
    monkeypatch.setenv("THREADLINE_INPUT_MAX_EXTERNAL_ID_CHARS", "1000")  # wider than the column
    with pytest.raises(ValidationError):
        Settings()
    with pytest.raises(ValidationError, match="min_evidence_quotes"):
        PipelineSettings(min_evidence_quotes=6, evidence_quotes_per_story=5)


def test_rendering_never_shows_values_from_the_environment(monkeypatch):
    clean = config.configuration_markdown()
    monkeypatch.setenv("THREADLINE_DATABASE_URL", "postgresql://app:hunter2@db.internal/threadline")
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", "https://llm.internal/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("THREADLINE_INPUT_MAX_MESSAGE_CHARS", "99")
    rendered = config.configuration_markdown()
    assert rendered == clean
    assert "hunter2" not in rendered and "sk-secret" not in rendered
    assert "| `THREADLINE_DATABASE_URL` | unset (secret: never shown) |" in rendered


def test_write_readme_rewrites_only_the_marked_section(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nprose\n\n{config.README_BEGIN}\nOLD-TABLE-XYZ\n{config.README_END}\n\nafter\n")
    assert config.main(["--write-readme", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nprose\n\n") and text.endswith(f"{config.README_END}\n\nafter\n")
    assert config.readme_section(text) == config.configuration_markdown() and "OLD-TABLE-XYZ" not in text
    config.main(["--write-readme", "--readme", str(readme)])
    assert readme.read_text() == text
    assert "already current" in capsys.readouterr().out
    config.main([])
    assert capsys.readouterr().out == config.configuration_markdown()


# --- code reads the tree when it works, so an override applies (nothing frozen at import) --------------------------


def _override(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_input_limits_apply_at_import_time_of_a_record(monkeypatch):
    from threadline.connectors.files.readers import RecordError, build_message, check_message_count

    _override(monkeypatch, THREADLINE_INPUT_MAX_MESSAGE_CHARS="100", THREADLINE_INPUT_MAX_MESSAGES_PER_CONVERSATION="2")
    notes: list[str] = []
    message = build_message("customer", "x" * 150, None, None, "message 1", notes)
    assert message.truncated and len(message.text) == 100 and "to 100 characters" in notes[0]
    with pytest.raises(RecordError, match="the limit is 2"):
        check_message_count(3)


def test_pipeline_quote_length_follows_the_setting(monkeypatch):
    from threadline.stories.evidence import candidate_sentences

    text = "The export to CSV fails every single time I try it with more than a thousand rows in the report."
    assert len(candidate_sentences(1, [(1, text)])[0].text) > 60
    _override(monkeypatch, THREADLINE_PIPELINE_MAX_QUOTE_CHARS="60")
    quote = candidate_sentences(1, [(1, text)])[0]
    assert len(quote.text) <= 60 and text[quote.start : quote.end] == quote.text


def test_read_trend_bound_follows_the_setting(monkeypatch):
    from threadline.read.themes import fill_buckets

    start = datetime(2026, 1, 5, tzinfo=UTC)
    counts = {start + timedelta(weeks=i): 1 for i in range(10)}
    assert len(fill_buckets(counts, "week")) == 10
    _override(monkeypatch, THREADLINE_READ_MAX_TREND_BUCKETS="4")
    points = fill_buckets(counts, "week")
    assert [p["start"] for p in points] == [start + timedelta(weeks=i) for i in range(6, 10)]  # newest kept


def test_api_bounds_are_validated_and_published_from_the_settings(monkeypatch):
    """`AtMost` reads the tree per request and per schema: an override changes both, with pydantic's own error."""
    app = FastAPI()

    @app.get("/items", response_model=Page[int])
    def items(limit: LimitQuery = 5) -> dict:
        return {"items": [], "limit": limit, "offset": 0}

    client = TestClient(app)
    assert client.get("/items", params={"limit": 100}).status_code == 200
    _override(monkeypatch, THREADLINE_READ_MAX_LIST_LIMIT="50")
    refused = client.get("/items", params={"limit": 100})
    assert refused.status_code == 422 and refused.json()["detail"][0]["type"] == "less_than_equal"
    assert client.get("/items", params={"limit": 50}).status_code == 200
    [parameter] = app.openapi()["paths"]["/items"]["get"]["parameters"]
    assert parameter["schema"]["maximum"] == 50


def test_cli_bounds_follow_the_settings(monkeypatch):
    from typer.testing import CliRunner

    from threadline.cli.main import app

    _override(monkeypatch, THREADLINE_READ_MAX_LIST_LIMIT="10", THREADLINE_API_MAX_SERVER_WORKERS="2")
    refused = CliRunner().invoke(app, ["stories", "--limit", "11"])
    assert refused.exit_code == 2 and "list limit 10" in refused.output
    refused = CliRunner().invoke(app, ["serve", "--workers", "3"])  # refused before anything starts
    assert refused.exit_code == 2 and "at most 2" in refused.output


def test_llm_prompt_sizes_follow_the_settings(monkeypatch):
    from threadline.ai.llm.facets import conversation_input, facet_messages

    conversation = conversation_input("c1", [("m1", "customer", "y" * 500)])
    assert facet_messages(conversation)[1] is False
    _override(monkeypatch, THREADLINE_LLM_FACETS_MESSAGE_CHARS="100")
    messages, truncated = facet_messages(conversation)
    assert truncated and "y" * 101 not in messages[-1]["content"]


def test_database_pool_follows_the_settings(monkeypatch):
    from threadline.db.engine import make_engine

    _override(monkeypatch, THREADLINE_DATABASE_POOL_SIZE="3")
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # no connection is made
    assert engine.pool.size() == 3
    engine.dispose()


def test_sync_error_length_follows_the_settings(monkeypatch):
    from threadline.connectors.sources import SourceError
    from threadline.engine.sync import safe_error

    _override(monkeypatch, THREADLINE_MAX_SYNC_ERROR_CHARS="80")
    assert len(safe_error(SourceError("e" * 300), None, "acme")) == 80


# --- nothing but the tree reads the environment ----------------------------------------------------------------------

# (file, pattern of the line): the only places outside config.py that may touch os.environ, and why.
ENVIRON_ALLOWED = (
    # The default home, the settings tree's own default (in a module without pydantic, for the launcher).
    ("home.py", r'os\.environ\.get\("XDG_DATA_HOME"\)'),
    # The launcher hands the whole environment to the warm process (it is also that process's key), whose
    # forked child takes it as its own before the command reads its settings.
    ("cli/launch.py", r"environ = dict\(os\.environ\)"),
    ("cli/warm.py", r'os\.environ\.(clear\(\)|update\(request\["env"\]\))'),
    # Intercom tokens are read from the variable a source names (`--token-env`), never stored as settings.
    ("connectors/intercom/client.py", r"os\.environ\.get\(token_env"),
    # Zendesk credentials likewise come from the variables a source names (`--email-env`, `--token-env`, ...).
    ("connectors/zendesk/client.py", r"os\.environ\.get\((oauth_token_env|email_env)"),
    ("engine/sync.py", r"os\.environ\.get\(token_env\)"),  # to redact the token's value from a stored error
    # Tracker tokens come from the variables a tracker names (`--token-env`, `--email-env`, `--api-key-env`).
    ("exporters/github.py", r"os\.environ\.get\(config\.token_env"),
    ("exporters/jira.py", r"os\.environ\.get\(config\.(email_env|token_env)"),
    ("exporters/linear.py", r"os\.environ\.get\(config\.api_key_env"),
    # Notification URLs and signing secrets come from the variables a channel names (`--url-env`, `--secret-env`).
    ("exporters/notify.py", r"os\.environ\.get\(variable_name"),
    # Offline flags of the Hugging Face libraries, set (never overwritten) before the local model loads.
    (
        "ai/torch_embeddings.py",
        r'os\.environ\.setdefault\("(HF_HUB_OFFLINE|TRANSFORMERS_OFFLINE|HF_HUB_DISABLE_PROGRESS_BARS|TRANSFORMERS_VERBOSITY)"',
    ),
)
ENVIRON_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environ_uses(path: Path) -> list[tuple[int, str]]:
    """(line, source line) of every use of os.environ/getenv/putenv/unsetenv in `path`."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRON_NAMES:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append((node.lineno, lines[node.lineno - 1].strip()))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ENVIRON_NAMES for alias in node.names):
                found.append((node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found)


def test_only_the_settings_tree_reads_the_environment():
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative == "config.py":
            continue
        for line, code in _environ_uses(path):
            allowed = any(relative == file and re.search(pattern, code) for file, pattern in ENVIRON_ALLOWED)
            if not allowed:
                offenders.append(f"{relative}:{line}: {code}")
    assert not offenders, "read settings through threadline.config.get_settings():\n" + "\n".join(offenders)


def test_the_environment_scan_sees_every_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\nfrom os import getenv\nos.environ['A'] = '1'\nos.getenv('B')\nos.environ.get('C')\n",
        encoding="utf-8",
    )
    assert [line for line, _ in _environ_uses(sample)] == [2, 3, 4, 5]

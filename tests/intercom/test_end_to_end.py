"""End to end over real sockets: the stand-in under uvicorn on 127.0.0.1, the client, the CLI
in a subprocess and the PostgreSQL sink; plus a sync killed (SIGKILL) at random points."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.intercom import WorkspaceSpec
from threadline_testing.serve import serve
from threadline_testing.sinks import MemorySink

from threadline.connectors.intercom.client import RETRY_POLICY, IntercomClient
from threadline.connectors.intercom.sync import IntercomSync
from threadline.connectors.store import content_hash
from threadline.db.models import Conversation, DeadLetter, Message, Source

CLI = [sys.executable, "-m", "threadline.cli.main"]
TOKEN_ENV = "THREADLINE_TEST_INTERCOM_TOKEN"


def cli(env, *args, check=True, timeout=300):
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"cli {args} exited {result.returncode}: {result.stderr[-3000:]}")
    return result


def test_sync_over_real_sockets(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=300, seed=21, deleted=3),
        window_seconds=1,
        limit_per_window=150,
        error_500_share=0.05,
        error_429_share=0.02,
        fault_seed=21,
    )
    sink = MemorySink()
    with serve(standin.checked) as base_url:
        assert base_url.startswith("http://127.0.0.1:")

        async def go():
            async with IntercomClient(
                standin.token, base_url=base_url, retry_policy=replace(RETRY_POLICY, base_s=0.05)
            ) as client:
                return await IntercomSync(client, sink).run()

        report = asyncio.run(go())
    truth = {cid: c.updated_at for cid, c in standin.workspace.conversations.items()}
    assert {cid: int(sink.records[cid].updated_at.timestamp()) for cid in sink.live_ids()} == truth
    assert set(sink.deleted) == set(standin.workspace.deleted)
    assert report.written == 300 - 3 and sink.duplicate_writes() == 0
    assert standin.stats.limit_429 == 0 and standin.stats.injected_500 > 0
    assert max(standin.stats.per_window.values()) <= 150


def test_cli_add_and_sync_into_postgres(make_standin, cli_env, db_engine) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=120, seed=22, deleted=2),
        window_seconds=1,
        limit_per_window=500,
        failing_conversation_ids=frozenset({"100005"}),
    )
    env = {**cli_env, TOKEN_ENV: standin.token}
    with serve(standin.checked) as base_url:
        added = cli(
            env, "sources", "add", "intercom", "--name", "support", "--token-env", TOKEN_ENV, "--base-url", base_url
        )
        first = cli(env, "sync", "support", "--json", check=False)
        assert first.returncode == 1, first.stderr[-2000:]  # one conversation dead-lettered
        summary = json.loads(first.stdout)
        assert summary["written"] == 117 and summary["dead_lettered"] == 1 and summary["deleted"] == 2
        standin.config.failing_conversation_ids = frozenset()
        second = json.loads(cli(env, "sync", "support", "--json").stdout)
        assert second["written"] == 1  # only the dead-lettered one, retried
        missing_token = cli({**env, TOKEN_ENV: ""}, "sync", "support", check=False)
        assert missing_token.returncode == 2 and TOKEN_ENV in missing_token.stderr
    for output in (added, first, missing_token):
        assert standin.token not in output.stdout + output.stderr

    with Session(db_engine) as session:
        source = session.execute(select(Source).where(Source.name == "support")).scalar_one()
        assert source.kind == "intercom" and source.config["token_env"] == TOKEN_ENV
        assert standin.token not in json.dumps(source.config)
        assert source.sync_state["watermark"] > 0 and source.sync_state["retry_ids"] == []
        rows = session.execute(
            select(Conversation.external_id, Conversation.deleted_at).where(Conversation.source_id == source.id)
        ).all()
        assert {r.external_id for r in rows if r.deleted_at is None} == set(standin.workspace.conversations)
        letters = session.execute(select(DeadLetter)).scalars().all()
        assert [(d.stage, d.item) for d in letters] == [("ingest.intercom", "100005")]
        assert session.execute(select(Message).limit(1)).scalar_one_or_none() is not None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [31, 32, 33])
def test_sync_killed_at_random_points_resumes_identically(make_standin, cli_env, db_engine, seed) -> None:
    spec = WorkspaceSpec(conversations=400, seed=seed, deleted=3, merged_contact_share=0.1)
    faults = dict(window_seconds=1, limit_per_window=200, error_500_share=0.05, fault_seed=seed)
    baseline_standin = make_standin(spec, **faults)
    baseline = MemorySink()

    async def uninterrupted(base_url):
        async with IntercomClient(baseline_standin.token, base_url=base_url) as client:
            await IntercomSync(client, baseline).run()

    with serve(baseline_standin.checked) as base_url:
        asyncio.run(uninterrupted(base_url))

    standin = make_standin(spec, **faults)
    env = {**cli_env, TOKEN_ENV: standin.token}
    rng = random.Random(seed)
    kills = 0
    with serve(standin.checked) as base_url:
        cli(env, "sources", "add", "intercom", "--name", "ic", "--token-env", TOKEN_ENV, "--base-url", base_url)
        for _ in range(3):  # three SIGKILLs at random moments of the sync, then one run to the end
            requests_before = standin.stats.requests
            proc = subprocess.Popen([*CLI, "sync", "ic"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            target = requests_before + rng.randint(20, 400)
            deadline = time.monotonic() + 120
            while proc.poll() is None and standin.stats.requests < target and time.monotonic() < deadline:
                time.sleep(0.01)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
            proc.stderr.close()
        cli(env, "sync", "ic")
    assert kills >= 1
    with Session(db_engine) as session:
        rows = session.execute(
            select(Conversation.external_id, Conversation.content_hash, Conversation.deleted_at)
        ).all()
    live = {r.external_id: r.content_hash for r in rows if r.deleted_at is None}
    assert live == {cid: content_hash(baseline.records[cid]) for cid in baseline.live_ids()}
    with Session(db_engine) as session:
        state = session.execute(select(Source.sync_state).where(Source.name == "ic")).scalar_one()
    assert state["watermark"] > 0 and state["retry_ids"] == [] and "deleted_watermark" in state


def test_read_timeout_is_retried_then_reported(make_standin) -> None:
    """A server slower than the read timeout: bounded retries, then an error naming the timeout."""
    import httpx

    from threadline.connectors.intercom.client import MAX_ATTEMPTS, IntercomError

    standin = make_standin(WorkspaceSpec(conversations=5), slow_share=1.0, slow_seconds=0.5)
    timeout = httpx.Timeout(connect=1.0, read=0.1, write=1.0, pool=1.0)

    async def go(base_url):
        async with IntercomClient(
            standin.token, base_url=base_url, timeout=timeout, retry_policy=replace(RETRY_POLICY, base_s=0.01)
        ) as client:
            await client.me()

    with serve(standin.checked) as base_url:
        with pytest.raises(IntercomError, match="ReadTimeout") as info:
            asyncio.run(go(base_url))
    assert info.value.attempts == MAX_ATTEMPTS and info.value.status is None
    assert standin.stats.requests == MAX_ATTEMPTS


def test_run_can_sync_its_source_first(make_standin, cli_env) -> None:
    """`threadline run --source S --sync` brings the Intercom source up to date, then analyses it."""
    standin = make_standin(WorkspaceSpec(conversations=40, seed=23), window_seconds=1, limit_per_window=500)
    env = {**cli_env, TOKEN_ENV: standin.token}
    main = [sys.executable, "-m", "threadline.cli.main"]
    with serve(standin.checked) as base_url:
        subprocess.run(
            [
                *main,
                "sources",
                "add",
                "intercom",
                "--name",
                "support",
                "--token-env",
                TOKEN_ENV,
                "--base-url",
                base_url,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        result = subprocess.run(
            [*main, "run", "--source", "support", "--sync", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    assert run["counters"]["conversations"] == len(standin.workspace.conversations)
    assert standin.token not in result.stdout + result.stderr

"""A hostile API client (issue 15, finding 5): huge bodies, NUL bytes, token guessing, leaky logs.

The body-size test runs `threadline serve` as a real process and measures its resident memory
with psutil: a 50 MB body without any token must be refused with 413 without the server
holding it (growth under 20 MB, a generous bound on a measurement, not a timing).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from support import threadline_command

from threadline.config import Settings
from threadline.db.engine import session_scope
from threadline.server.tokens import create_token

SERVE_START_TIMEOUT_S = 60  # seconds for `serve` to answer /health
BIG_BODY_BYTES = 50 * 1024 * 1024  # the body the issue names: 50 MB
MAX_RSS_GROWTH_BYTES = 20 * 1024 * 1024  # the bound the issue names
CHUNK = 256 * 1024  # bytes per socket write while sending the big body
SECRET_QUERY = "customer-secret-query"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def serve(cli_env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `threadline serve` on a free loopback port: (base URL, process)."""
    port = _free_port()
    process = subprocess.Popen(
        [*threadline_command(), "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVE_START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
        time.sleep(0.2)
    yield base, process
    process.terminate()
    process.wait(timeout=30)
    if process.stderr:
        process.stderr.close()


def _post_raw(port: int, headers: list[str], body_bytes: int, chunked: bool) -> tuple[int, int]:
    """Send a POST of `body_bytes` zero bytes over a raw socket; (HTTP status, bytes the server took before answering).

    The server may answer and close while the body is still being sent: the send stops there.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "\r\n".join(["POST /api/runs HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers])
    sock.sendall((head + "\r\n\r\n").encode())
    sent = 0
    block = b"0" * CHUNK
    try:
        while sent < body_bytes:
            piece = block[: min(CHUNK, body_bytes - sent)]
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: exactly what should happen
    answer = b""
    try:
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return (int(match.group(1)) if match else 0), sent


def _rss(process: subprocess.Popen) -> int:
    """Resident bytes of the server process and its children (uvicorn runs in the process itself with one worker)."""
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def test_a_50_mb_unauthenticated_body_is_refused_with_413_and_not_held(serve) -> None:
    base, process = serve
    port = int(base.rsplit(":", 1)[1])
    assert httpx.post(f"{base}/api/runs", json={}, timeout=5).status_code == 401  # warm: routes, auth path loaded
    before = _rss(process)
    declared, _ = _post_raw(port, [f"Content-Length: {BIG_BODY_BYTES}"], BIG_BODY_BYTES, chunked=False)
    streamed, _ = _post_raw(port, ["Transfer-Encoding: chunked"], BIG_BODY_BYTES, chunked=True)
    growth = _rss(process) - before
    print(f"RSS before {before / 2**20:.1f} MiB, growth after two 50 MB bodies {growth / 2**20:.1f} MiB")
    assert (declared, streamed) == (413, 413)
    assert growth < MAX_RSS_GROWTH_BYTES, f"the server grew by {growth / 2**20:.1f} MiB"
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200  # and it still answers


@pytest.fixture()
def api(db_engine: Engine, db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    from threadline.app import create_app

    with session_scope(db_engine) as session:
        token = create_token(session, "hostile")
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    app = create_app(settings, engine=db_engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, token


def test_nul_and_invalid_text_answer_4xx_never_500(api, caplog) -> None:
    client, token = api
    auth = {"Authorization": f"Bearer {token}"}
    with caplog.at_level("INFO"):
        answers = {
            "q": client.get(f"/api/conversations?q={SECRET_QUERY}%00x", headers=auth),
            "source": client.get("/api/conversations?source=a%00b", headers=auth),
            "severity": client.get("/api/stories?severity=hi%00gh", headers=auth),
            "name": client.get("/api/conversations?q%00=x", headers=auth),
            "patch title": client.patch("/api/stories/1", headers=auth, json={"title": "bad\u0000title"}),
            "patch surrogate": client.patch(
                "/api/stories/1",
                headers={**auth, "Content-Type": "application/json"},
                content=b'{"title": "bad \\ud800 title"}',
            ),
            "theme name": client.patch("/api/themes/1", headers=auth, json={"name": "x\u0000"}),
            "run source": client.post("/api/runs", headers=auth, json={"sources": ["a\u0000"]}),
            "forget": client.post("/api/forget", headers=auth, json={"customer": "x\u0000@example.org"}),
            "page q": client.get(f"/conversations?q={SECRET_QUERY}%00", headers=auth),
        }
    for name, response in answers.items():
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:200])
    server_side = [r for r in caplog.records if not r.name.startswith("httpx")]  # the test client logs its own URLs
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in server_side)
    assert SECRET_QUERY not in logged and "Traceback" not in logged


def test_failed_authentications_are_throttled_per_client(api) -> None:
    client, token = api
    statuses = [
        client.get("/api/runs", headers={"Authorization": f"Bearer tl_guess{i}"}).status_code for i in range(60)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert statuses.count(401) <= 25  # the burst, then 429s
    refused = client.get("/api/runs", headers={"Authorization": "Bearer tl_again"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # Dashboard sign-in counts the same way.
    form = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    signed = client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False)
    assert signed.status_code == 429


def test_the_body_limit_is_a_setting_and_holds_in_process(db_engine: Engine, db_url: str, tmp_path: Path) -> None:
    from threadline.app import create_app

    settings = Settings(home=tmp_path / "home", database_url=db_url, api={"max_body_bytes": 4096})
    with TestClient(create_app(settings, engine=db_engine)) as client:
        big = client.post("/api/runs", content=json.dumps({"sources": ["x" * 5000]}))
        assert big.status_code == 413 and big.json()["detail"]
        small = client.post("/api/runs", json={})
        assert small.status_code == 401
        page = client.post("/login", content=b"x" * 5000, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")


def test_uvicorn_logs_no_query_strings(serve) -> None:
    base, process = serve
    httpx.get(f"{base}/api/conversations?q={SECRET_QUERY}%00", timeout=5)
    httpx.get(f"{base}/conversations?q={SECRET_QUERY}", timeout=5)
    httpx.get(f"{base}/nope?q={SECRET_QUERY}", timeout=5)
    process.terminate()
    process.wait(timeout=30)
    stderr = process.stderr.read() if process.stderr else ""
    assert SECRET_QUERY not in stderr

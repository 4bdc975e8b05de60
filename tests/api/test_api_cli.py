"""`threadline tokens` and `threadline serve` as real processes against the test database.

`cli/serve.py` is mounted on a bare Typer app here through its `register` hook, exactly as
`cli/main.py` mounts it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx

SERVE_START_TIMEOUT_S = 60  # seconds for `serve` to answer /health (migrations run first)
ENTRY = "import typer; from threadline.cli.serve import register; app = typer.Typer(); register(app); app()"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], env=env, capture_output=True, text=True, timeout=120)


def test_tokens_create_list_revoke(cli_env):
    created = cli(cli_env, "tokens", "create", "ci")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("tl_") and len(token) > 40
    assert cli(cli_env, "tokens", "create", "ci").returncode == 2  # names are unique
    listed = json.loads(cli(cli_env, "tokens", "list", "--json").stdout)
    assert [t["name"] for t in listed] == ["ci"] and token not in json.dumps(listed)
    assert cli(cli_env, "tokens", "revoke", "ci").returncode == 0
    assert cli(cli_env, "tokens", "revoke", "ci").returncode == 1
    assert json.loads(cli(cli_env, "tokens", "list", "--json").stdout)[0]["revoked_at"]


def test_serve_answers_health_and_guards_the_api(cli_env):
    token = cli(cli_env, "tokens", "create", "serve").stdout.strip()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        assert httpx.get(f"{base}/api/sources", timeout=5).status_code == 401
        ok = httpx.get(f"{base}/api/sources", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert ok.status_code == 200 and ok.json()["items"] == []
    finally:
        server.terminate()
        server.wait(timeout=30)
        stderr = server.stderr.read() if server.stderr else ""
        if server.stderr:
            server.stderr.close()
    assert token not in stderr  # nothing logs the token

"""An unexpected error ends any command as one line and exit 3, never a traceback (issue 15, finding 7)."""

from __future__ import annotations

import socket
import subprocess

from support import threadline_command


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_is_one_line_and_exit_3(cli_env) -> None:
    env = {**cli_env, "THREADLINE_DATABASE_URL": f"postgresql+psycopg://u:secret@127.0.0.1:{_closed_port()}/x"}
    result = subprocess.run(
        [*threadline_command(), "runs", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr
    assert result.stderr.strip().startswith("error: unexpected OperationalError")
    assert len(result.stderr.strip().splitlines()) == 1

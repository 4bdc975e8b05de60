"""The embedded server: started on demand, shared by concurrent processes, stopped by the last or after a grace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from support import EXAMPLES


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=("name", "cmdline")):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and any(str(pgdata) in part for part in cmdline):
            found.append(proc)
    return found


def test_concurrent_processes_share_one_embedded_server_and_the_last_stops_it(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env["THREADLINE_HOME"] = str(home)
    env["THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S"] = "0"  # the old rule: the last holder stops it
    command = [sys.executable, "-m", "threadline.cli.main", "import", str(EXAMPLES), "--source"]
    processes = [
        subprocess.Popen([*command, f"s{i}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [o[1][-1000:] for o in outputs]
    status = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert status.stdout.count('"conversations": 310') == 3
    pgdata = (home / "pgdata").resolve()
    deadline = time.monotonic() + 30
    while postgres_processes(pgdata) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert postgres_processes(pgdata) == []


def test_a_killed_holder_does_not_keep_the_server_alive(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env["THREADLINE_HOME"] = str(home)
    env["THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S"] = "0"  # the old rule: the last holder stops it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from threadline.db.engine import get_engine; get_engine(); print('up', flush=True); "
            "import time; time.sleep(600)",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "up"
    holder.kill()  # SIGKILL: no atexit cleanup, its pid stays in the holder list
    holder.wait()
    subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    pgdata = (home / "pgdata").resolve()
    deadline = time.monotonic() + 30
    while postgres_processes(pgdata) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert postgres_processes(pgdata) == []


def embedded_env(home: Path, grace_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "THREADLINE_DATABASE_URL"}
    env["THREADLINE_HOME"] = str(home)
    env["THREADLINE_DATABASE_EMBEDDED_IDLE_GRACE_S"] = str(grace_s)
    return env


def threadline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def postmaster(pgdata: Path) -> int | None:
    """The running server's pid from postmaster.pid, None when no server runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def wait_stopped(pgdata: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while postgres_processes(pgdata) and time.monotonic() < deadline:
        time.sleep(0.2)
    return postgres_processes(pgdata) == []


def keeper_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=("cmdline",)):
        cmdline = proc.info.get("cmdline") or []
        if "threadline.db.keeper" in cmdline and str(pgdata) in cmdline and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def test_a_second_command_reuses_the_running_server_and_db_stop_stops_it(tmp_path):
    home = tmp_path / "home"
    env = embedded_env(home, 120)
    pgdata = (home / "pgdata").resolve()
    try:
        threadline(env, "status", "--json")
        first = postmaster(pgdata)
        assert first is not None, "the server stopped with the command despite the grace period"
        threadline(env, "status", "--json")
        assert postmaster(pgdata) == first  # no new postmaster: the second command joined the running one
        assert len(keeper_processes(pgdata)) == 1
        stopped = threadline(env, "db", "stop")
        assert "embedded server stopped" in stopped.stdout
        assert wait_stopped(pgdata, 10)
        assert postmaster(pgdata) is None
        deadline = time.monotonic() + 10
        while keeper_processes(pgdata) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keeper_processes(pgdata) == []
        assert "was not running" in threadline(env, "db", "stop").stdout
    finally:
        threadline(env, "db", "stop", check=False)


def test_the_server_stops_itself_after_the_idle_grace(tmp_path):
    home = tmp_path / "home"
    env = embedded_env(home, 3)
    pgdata = (home / "pgdata").resolve()
    try:
        threadline(env, "status", "--json")
        assert wait_stopped(pgdata, 30), "the server outlived its idle grace"
        # stopped by the keeper at the end of the grace, not by the command (test 1: a command leaves it up)
        assert "idle for 3 s: server stopped" in (pgdata / "keeper.log").read_text()
        deadline = time.monotonic() + 10
        while keeper_processes(pgdata) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert keeper_processes(pgdata) == []
        threadline(env, "status", "--json")  # and it starts again on the next command
        assert postmaster(pgdata) is not None
    finally:
        threadline(env, "db", "stop", check=False)


def test_db_stop_refuses_while_another_process_uses_the_server(tmp_path):
    home = tmp_path / "home"
    env = embedded_env(home, 120)
    pgdata = (home / "pgdata").resolve()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from threadline.db.engine import get_engine; get_engine(); print('up', flush=True); "
            "import time; time.sleep(600)",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "up"
        refused = threadline(env, "db", "stop", check=False)
        assert refused.returncode == 1
        assert f"pid {holder.pid}" in refused.stderr
        assert postmaster(pgdata) is not None
        holder.terminate()
        holder.wait(30)
        assert postmaster(pgdata) is not None  # the keeper holds it through the grace period
        assert threadline(env, "db", "stop").returncode == 0
        assert wait_stopped(pgdata, 10)
    finally:
        holder.kill()
        holder.wait()
        threadline(env, "db", "stop", check=False)

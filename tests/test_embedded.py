"""The embedded server: started on demand, shared by concurrent processes, stopped by the last."""

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

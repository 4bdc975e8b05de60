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
        # stopped by the keeper at the end of the grace, not by the command (test 1: a command leaves it up);
        # the keeper logs that once `pg_ctl stop` has returned, a moment after the server is gone
        deadline = time.monotonic() + 10
        while "idle for 3 s: server stopped" not in (log := (pgdata / "keeper.log").read_text()):
            assert time.monotonic() < deadline, log[-2000:]
            time.sleep(0.2)
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


def test_two_homes_never_wait_on_each_others_lock(tmp_path):
    """Home B starts and joins its server while home A's lock and pgserver's machine-wide lock are taken."""
    import fasteners

    from threadline.db.embedded import data_dir_lock

    runtime = tmp_path / "runtime"
    (runtime / "python_PostgresServer").mkdir(parents=True)  # where pgserver puts its one lock file
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    (home_a / "pgdata").mkdir(parents=True)
    env_b = {**embedded_env(home_b, 120), "XDG_RUNTIME_DIR": str(runtime)}
    pgdata_b = (home_b / "pgdata").resolve()
    global_lock = fasteners.InterProcessLock(runtime / "python_PostgresServer" / ".lockfile")
    try:
        with data_dir_lock((home_a / "pgdata").resolve()):
            assert global_lock.acquire(blocking=False)
            try:
                started = subprocess.run(
                    [sys.executable, "-m", "threadline.cli.main", "status", "--json"],
                    env=env_b,
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
                assert started.returncode == 0, started.stderr[-2000:]
                first = postmaster(pgdata_b)
                assert first is not None
                threadline(env_b, "status", "--json")  # joins B's running server
                assert postmaster(pgdata_b) == first
            finally:
                global_lock.release()
    finally:
        threadline(env_b, "db", "stop", check=False)


def test_a_command_during_a_stop_waits_and_starts_a_new_server(tmp_path):
    """A stop in progress holds the data directory's lock: a command waits, then starts a fresh server."""
    from threadline.db.embedded import data_dir_lock, stop_server

    home = tmp_path / "home"
    env = embedded_env(home, 120)
    pgdata = (home / "pgdata").resolve()
    try:
        threadline(env, "status", "--json")
        first = postmaster(pgdata)
        assert first is not None
        with data_dir_lock(pgdata):  # what the keeper holds while it stops the server
            command = subprocess.Popen(
                [sys.executable, "-m", "threadline.cli.main", "status", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert stop_server(pgdata)
            time.sleep(3)
            assert command.poll() is None, "the command went ahead during the stop"
        out, err = command.communicate(timeout=90)
        assert command.returncode == 0, err[-2000:]
        assert '"runs"' in out
        second = postmaster(pgdata)
        assert second is not None and second != first
    finally:
        threadline(env, "db", "stop", check=False)


def test_the_keeper_takes_the_data_directory_lock_before_stopping(tmp_path):
    from threadline.db.embedded import data_dir_lock

    home = tmp_path / "home"
    env = embedded_env(home, 1)
    pgdata = (home / "pgdata").resolve()
    try:
        threadline(env, "status", "--json")
        with data_dir_lock(pgdata):
            time.sleep(4)  # well past the grace: the keeper waits for the lock
            assert postmaster(pgdata) is not None
        assert wait_stopped(pgdata, 15)
    finally:
        threadline(env, "db", "stop", check=False)


def test_a_stale_postmaster_file_is_not_a_running_server(tmp_path):
    from threadline.db.embedded import running_postmaster

    (tmp_path / "postmaster.pid").write_text(
        f"{os.getpid()}\n{tmp_path}\n1700000000\n5432\n{tmp_path}\n\n  123 456\nready\n", encoding="utf-8"
    )
    (tmp_path / ".s.PGSQL.5432").touch()
    assert running_postmaster(tmp_path) is None  # the pid is alive but it is this Python, not postgres

"""The warm command process: read commands after the first skip the imports, and answer exactly as before."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url

from threadline.cli.launch import PACKAGE_DIRECTORY, is_warm_command, socket_path, warm_directory, warm_key

LAUNCHER = [sys.executable, "-m", "threadline.cli.launch"]  # what the `threadline` console script runs
IN_PROCESS = [sys.executable, "-m", "threadline.cli.main"]  # the command without any warm process
WARM_LINE = "command answered by the warm process"
READY_TIMEOUT_S = 60.0  # the warm process imports the CLI's libraries before it listens
COMMAND_TIMEOUT_S = 120


@pytest.mark.parametrize(
    ("arguments", "warm"),
    [
        ([], True),
        (["--help"], True),
        (["status", "--json"], True),
        (["themes"], True),
        (["themes", "--run", "3", "--json"], True),
        (["stories", "--limit", "5"], True),
        (["runs", "list"], True),
        (["runs", "show", "4"], True),
        (["runs", "list", "--help"], True),
        (["run", "--help"], False),  # `--help` counts at the top or in a read command only:
        (["forget", "--customer", "--help"], False),  # here it is an option's value (this erases)
        (["run", "--source", "--help"], False),
        (["themes", "rename", "1", "--", "--help"], False),
        (["report", "-o", "backlog.md"], False),  # records what it exported
        (["themes", "rename", "3", "Billing"], False),
        (["themes", "--run", "3", "merge", "1", "2"], False),
        (["stories", "status", "7", "done"], False),
        (["runs", "stop", "4"], False),
        (["run"], False),
        (["import", "file.jsonl"], False),
        (["worker"], False),
        (["serve"], False),
        (["db", "restore", "x"], False),
        (["forget", "--customer", "x"], False),
    ],
)
def test_only_commands_that_read_and_never_prompt_go_to_the_warm_process(arguments, warm):
    assert is_warm_command(arguments) is warm


def test_the_key_covers_the_environment_but_not_the_shell_s_bookkeeping():
    env = {"THREADLINE_HOME": "/h", "PWD": "/a", "OLDPWD": "/b", "SHLVL": "1", "_": "/usr/bin/threadline"}
    moved = {**env, "PWD": "/c", "OLDPWD": "/a", "SHLVL": "2", "_": "/x"}
    assert warm_key(env) == warm_key(moved)
    assert warm_key(env) != warm_key({**env, "THREADLINE_READ_MAX_LIST_LIMIT": "5"})
    assert warm_key(env) != warm_key({**env, "THREADLINE_HOME": "/other"})


def test_an_edited_source_file_changes_the_key(tmp_path):
    package = tmp_path / "threadline"
    shutil.copytree(PACKAGE_DIRECTORY / "cli", package / "cli", ignore=shutil.ignore_patterns("__pycache__"))
    before = warm_key({}, package)
    assert warm_key({}, package) == before
    edited = package / "cli" / "common.py"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert warm_key({}, package) != before


def threadline(command: list[str], env: dict[str, str], launcher: list[str] = LAUNCHER) -> subprocess.CompletedProcess:
    return subprocess.run([*launcher, *command], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def wait_for(condition, what: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_warm_process(env: dict[str, str]) -> int:
    """Run a read command, which starts the warm process for `env`, and return its pid once it listens."""
    threadline(["status"], env)
    wait_for(lambda: warm_pid(env) is not None, "the warm process to listen")
    pid = warm_pid(env)
    assert pid is not None
    return pid


def warm_pid(env: dict[str, str]) -> int | None:
    """The pid of the warm process listening for this environment, once it listens.

    Found by the socket of the launcher's key for `env`: the key covers the launcher's import path, which
    differs from this test process's, so it is asked from a launcher's interpreter.
    """
    path = socket_path(warm_directory(env), launcher_key(env))
    pid_file = path.with_suffix(".pid")
    if not path.exists() or not pid_file.exists():
        return None
    return int(pid_file.read_text(encoding="ascii"))


KEY_OF_LAUNCHER = "import os; from threadline.cli.launch import warm_key; print(warm_key(dict(os.environ)))"
_keys: dict[tuple[tuple[str, str], ...], str] = {}


def launcher_key(env: dict[str, str]) -> str:
    """`warm_key` as a launcher computes it for `env`."""
    cache_key = tuple(sorted(env.items()))
    if cache_key not in _keys:
        found = subprocess.run(
            [sys.executable, "-c", KEY_OF_LAUNCHER], env=env, capture_output=True, text=True, timeout=60
        )
        assert found.returncode == 0, found.stderr
        _keys[cache_key] = found.stdout.strip()
    return _keys[cache_key]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture()
def warm_env(cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The test database's environment with INFO logs (which name the warm process that answered)."""
    env = {**cli_env, "THREADLINE_LOG_LEVEL": "INFO", "THREADLINE_CLI_WARM_IDLE_S": "60"}
    env.pop("PWD", None)
    yield env
    stop_warm_processes(Path(env["THREADLINE_HOME"]) / "cli")


def stop_warm_processes(directory: Path) -> None:
    """SIGTERM to every warm process of `directory`, also one still importing (no pid file yet)."""
    marker = os.fsencode(directory)
    for process in Path("/proc").iterdir():
        try:
            command_line = (process / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"threadline.cli.warm" in command_line and marker in command_line:
            with contextlib.suppress(OSError):
                os.kill(int(process.name), signal.SIGTERM)


def test_a_read_command_after_the_first_is_answered_by_the_warm_process_with_the_same_output(warm_env):
    first = threadline(["status", "--json"], warm_env)
    assert first.returncode == 0, first.stderr
    assert WARM_LINE not in first.stderr  # the first one imports and runs in its own process
    wait_for(lambda: warm_pid(warm_env) is not None, "the warm process to listen")
    pid = warm_pid(warm_env)

    second = threadline(["status", "--json"], warm_env)
    assert second.returncode == 0, second.stderr
    assert f"{WARM_LINE} {pid}" in second.stderr
    assert second.stdout == first.stdout

    # the program is named as typed, whether the answer is warm or not
    warm_help = threadline(["--help"], warm_env)
    assert WARM_LINE not in warm_help.stderr  # help reads no settings, so logs nothing
    cold_help = threadline(["--help"], {**warm_env, "THREADLINE_CLI_WARM_IDLE_S": "0"})
    assert warm_help.stdout == cold_help.stdout
    assert "python -m threadline.cli.launch" in warm_help.stdout


def test_a_command_right_after_help_waits_for_the_warm_process_help_started(warm_env):
    """`--help` reads no settings but starts the warm process; a command started at once waits for it."""
    assert threadline(["--help"], warm_env).returncode == 0
    status = threadline(["status"], warm_env)  # no pause: the warm process is still importing
    assert status.returncode == 0
    assert f"{WARM_LINE} {warm_pid(warm_env)}" in status.stderr


def test_the_warm_process_passes_on_exit_codes_and_errors(warm_env):
    start_warm_process(warm_env)
    warm = threadline(["runs", "show", "999999"], warm_env)
    assert WARM_LINE in warm.stderr
    cold = threadline(["runs", "show", "999999"], warm_env, IN_PROCESS)
    assert warm.returncode == cold.returncode != 0
    assert warm.stdout == cold.stdout
    error = cold.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ")
    assert error in warm.stderr.splitlines()


def test_other_settings_never_reach_a_warm_process_of_other_settings(warm_env):
    first = start_warm_process(warm_env)

    other = {**warm_env, "THREADLINE_READ_MAX_LIST_LIMIT": "5"}
    changed = threadline(["runs", "list", "--limit", "6"], other)
    assert changed.returncode != 0  # the new limit applies: the first warm process did not answer
    assert WARM_LINE not in changed.stderr
    wait_for(lambda: warm_pid(other) is not None, "the warm process of the other settings")
    again = threadline(["runs", "list", "--limit", "6"], other)
    assert again.returncode == changed.returncode
    assert f"{WARM_LINE} {warm_pid(other)}" in again.stderr
    # the same code for another environment (a second terminal) does not push the first one out
    assert alive(first)
    assert f"{WARM_LINE} {first}" in threadline(["status"], warm_env).stderr


def test_a_terminal_s_session_variables_share_one_warm_process(warm_env):
    threadline(["status"], {**warm_env, "TMUX_PANE": "%1", "WINDOWID": "1"})
    wait_for(lambda: warm_pid(warm_env) is not None, "the warm process to listen")
    answered = threadline(["status"], {**warm_env, "TMUX_PANE": "%2", "WINDOWID": "2"})
    assert f"{WARM_LINE} {warm_pid(warm_env)}" in answered.stderr


def test_a_warm_process_of_outdated_code_is_stopped_and_its_lock_file_removed(warm_env):
    key = launcher_key(warm_env)
    outdated = "0" * 16 + key[16:]  # the same environment, other code
    directory = warm_directory(warm_env)
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.Popen(
        [sys.executable, "-m", "threadline.cli.warm", str(directory), outdated],
        env=warm_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    old_pid_file = directory / f"warm-{outdated}.pid"
    wait_for(old_pid_file.exists, "the outdated warm process to listen")
    old = int(old_pid_file.read_text(encoding="ascii"))
    threadline(["status"], warm_env)
    wait_for(lambda: warm_pid(warm_env) is not None, "the current warm process to listen")
    wait_for(lambda: not alive(old), "the outdated warm process to stop")
    assert not (directory / f"warm-{outdated}.sock").exists()
    assert not (directory / f"warm-{outdated}.lock").exists()


def test_closed_standard_streams_are_never_handed_to_the_warm_process(warm_env):
    """With stdout closed the socket would take descriptor 1: the command runs in its own process instead."""
    start_warm_process(warm_env)
    closed = [
        subprocess.run(
            ["sh", "-c", f"exec {' '.join(command)} status >&-"],
            env=warm_env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        for command in (LAUNCHER, IN_PROCESS)
    ]
    assert WARM_LINE not in closed[0].stderr
    assert closed[0].returncode == closed[1].returncode


def test_a_relative_home_is_the_caller_s(warm_env, tmp_path):
    env = {**warm_env, "THREADLINE_HOME": "relative-home"}
    first = subprocess.run([*LAUNCHER, "status"], env=env, cwd=tmp_path, capture_output=True, timeout=COMMAND_TIMEOUT_S)
    assert first.returncode == 0
    pid_files = tmp_path / "relative-home" / "cli"
    wait_for(lambda: any(pid_files.glob("warm-*.pid")), "the warm process to listen")
    second = subprocess.run(
        [*LAUNCHER, "status"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert WARM_LINE in second.stderr
    stop_warm_processes(pid_files)


def test_no_warm_process_when_the_setting_is_zero(warm_env):
    env = {**warm_env, "THREADLINE_CLI_WARM_IDLE_S": "0.0"}
    for command in (["--help"], ["status"], ["status"]):
        done = threadline(command, env)
        assert done.returncode == 0
        assert WARM_LINE not in done.stderr
    # not even one that would read the settings and leave: its lock file would be there
    assert not list((Path(env["THREADLINE_HOME"]) / "cli").glob("warm-*"))


def test_the_warm_process_exits_when_idle_and_when_its_socket_is_removed(warm_env):
    env = {**warm_env, "THREADLINE_CLI_WARM_IDLE_S": "1"}
    threadline(["status"], env)
    wait_for(lambda: warm_pid(env) is not None, "the warm process to listen")
    pid = warm_pid(env)
    assert pid is not None
    wait_for(lambda: not alive(pid), "the idle warm process to exit", timeout=30)
    assert not socket_path(warm_directory(env), launcher_key(env)).exists()

    pid = start_warm_process(warm_env)
    socket_path(warm_directory(warm_env), launcher_key(warm_env)).unlink()
    wait_for(lambda: not alive(pid), "the warm process without a socket to exit", timeout=30)
    done = threadline(["status"], warm_env)  # and the command still answers, in its own process
    assert done.returncode == 0
    assert WARM_LINE not in done.stderr


def test_only_one_warm_process_per_key(warm_env):
    pid = start_warm_process(warm_env)
    directory, key = warm_directory(warm_env), launcher_key(warm_env)
    second = subprocess.run(
        [sys.executable, "-m", "threadline.cli.warm", str(directory), key],
        env=warm_env,
        timeout=COMMAND_TIMEOUT_S,
        capture_output=True,
    )
    assert second.returncode == 0  # it found the key's lock held and left at once
    assert warm_pid(warm_env) == pid
    assert alive(pid)


TERMINAL_COLUMNS = 100


def on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Exit code and everything a terminal of TERMINAL_COLUMNS columns received from `threadline COMMAND`."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, TERMINAL_COLUMNS, 0, 0))
    process = subprocess.Popen(
        [*LAUNCHER, *command], stdin=terminal, stdout=terminal, stderr=terminal, env=env, start_new_session=True
    )
    os.close(terminal)
    received = b""
    while select.select([controller], [], [], COMMAND_TIMEOUT_S)[0]:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    return process.wait(timeout=COMMAND_TIMEOUT_S), received


LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ .*\r\n", re.MULTILINE)


def without_log_lines(output: bytes) -> bytes:
    return LOG_LINE.sub(b"", output)


def test_on_a_terminal_the_warm_answer_is_byte_identical(cli_env):
    """Colours, width and line endings follow the command's terminal, not the warm process's (which has none)."""
    env = {**cli_env, "TERM": "xterm-256color", "THREADLINE_CLI_WARM_IDLE_S": "60"}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "PWD"):
        env.pop(name, None)
    env["THREADLINE_LOG_LEVEL"] = "INFO"  # a warm answer says so in a log line, which is then set aside
    cold_env = {**env, "THREADLINE_CLI_WARM_IDLE_S": "0"}
    try:
        cold_status, cold_help = on_a_terminal(["status"], cold_env), on_a_terminal(["--help"], cold_env)
        assert cold_status[0] == cold_help[0] == 0
        assert b"\x1b[" in cold_status[1]  # styled: the table headers are bold on a terminal
        help_lines = re.sub(r"\x1b\[[0-9;]*m", "", cold_help[1].decode()).splitlines()
        assert max(len(line) for line in help_lines) == TERMINAL_COLUMNS  # the help's panels span the terminal
        on_a_terminal(["status"], env)
        wait_for(lambda: warm_pid(env) is not None, "the warm process to listen")
        warm_status = on_a_terminal(["status"], env)
        assert f"{WARM_LINE} {warm_pid(env)}".encode() in warm_status[1]
        assert (warm_status[0], without_log_lines(warm_status[1])) == (
            cold_status[0],
            without_log_lines(cold_status[1]),
        )
        assert on_a_terminal(["--help"], env) == cold_help
    finally:
        stop_warm_processes(Path(env["THREADLINE_HOME"]) / "cli")


def libpq_url(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def waiting_on_a_lock(db_url: str) -> bool:
    """Whether some session of the test database waits for a lock (the command's query, blocked)."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(found and found[0])


def signals_as_in_a_terminal() -> None:
    """Default Ctrl-C and hang-up handling in the command, as typed in a terminal; a test run under `nohup`
    or as a background job would otherwise pass them on ignored."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def interrupted_while_blocked(
    command: list[str], env: dict[str, str], db_url: str, signum: int = signal.SIGINT, served_by: int | None = None
) -> subprocess.CompletedProcess:
    """Run `command` while its table is locked, signal it once its query waits, and return how it ended.

    With `served_by`, the waiting command must be a child of that warm process.
    """
    with psycopg.connect(libpq_url(db_url)) as blocker:
        blocker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=signals_as_in_a_terminal,
        )
        wait_for(lambda: waiting_on_a_lock(db_url), "the command's query to wait for the lock")
        assert served_by is None or children_of(served_by)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_S)
        blocker.rollback()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_and_hang_up_reach_the_command_the_warm_process_runs(warm_env, db_url, signum):
    start_warm_process(warm_env)
    cold = interrupted_while_blocked([*IN_PROCESS, "runs", "list"], warm_env, db_url, signum)
    warm = interrupted_while_blocked([*LAUNCHER, "runs", "list"], warm_env, db_url, signum, warm_pid(warm_env))
    assert warm.returncode == cold.returncode != 0  # SIGHUP: both ended by it (-1)
    assert "Traceback" not in warm.stderr
    assert not waiting_on_a_lock(db_url)  # the interrupted query is gone, not left waiting in a child


def test_sigterm_stops_the_warm_process_and_removes_its_socket(warm_env):
    pid = start_warm_process(warm_env)
    path = socket_path(warm_directory(warm_env), launcher_key(warm_env))
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), "the warm process to stop", timeout=30)
    assert not path.exists()
    assert not path.with_suffix(".pid").exists()


def children_of(pid: int) -> list[int]:
    found = []
    for process in Path("/proc").iterdir():
        try:
            fields = (process / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(process.name))
    return found


def test_a_command_whose_launcher_was_killed_ends(warm_env, db_url):
    """SIGKILL to the launcher (or its terminal closing) hangs up the command, as a terminal would."""
    pid = start_warm_process(warm_env)
    with psycopg.connect(libpq_url(db_url)) as blocker:
        blocker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        launcher = subprocess.Popen([*LAUNCHER, "runs", "list"], env=warm_env, stdout=subprocess.DEVNULL)
        wait_for(lambda: waiting_on_a_lock(db_url), "the command's query to wait for the lock")
        assert children_of(pid)  # the command runs in a child of the warm process
        launcher.kill()
        launcher.wait(timeout=COMMAND_TIMEOUT_S)
        wait_for(lambda: not children_of(pid), "the command to end with its launcher", timeout=30)
        blocker.rollback()


def test_a_hang_up_the_launcher_ignores_is_ignored_by_its_command(warm_env, db_url):
    """`nohup threadline ...`: SIGHUP is ignored by the launcher, so the command finishes instead of dying."""
    pid = start_warm_process(warm_env)
    with psycopg.connect(libpq_url(db_url)) as blocker:
        blocker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        launcher = subprocess.Popen(
            [*LAUNCHER, "runs", "list"],
            env=warm_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
        )
        wait_for(lambda: waiting_on_a_lock(db_url), "the command's query to wait for the lock")
        assert children_of(pid)
        launcher.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # time for a forwarded hang-up to end the command, which must not happen
        blocker.rollback()
    stdout, stderr = launcher.communicate(timeout=COMMAND_TIMEOUT_S)
    assert launcher.returncode == 0, stderr
    assert "run" in stdout

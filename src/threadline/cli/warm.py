"""The warm command process: read commands without paying for imports (see `threadline.cli.launch`).

Started detached by the launcher as a read command that found none begins:

    python -m threadline.cli.warm DIRECTORY KEY [LOCK_FD]

It imports what read commands use, then listens on ``DIRECTORY/warm-KEY.sock`` (the directory is
the user's alone: mode 0700, and every peer's uid is checked). For each connection it forks; the
child takes the command's descriptors, working directory, environment and arguments, runs
`threadline.cli.main.main` and reports the exit code. The warm process itself reads only its idle
time (from a settings object of its own, never the cached one a command reads), opens no database
connection and starts no thread, so every child starts from the state of a fresh process that
has only imported modules. It exits after ``cli_warm_idle_s`` seconds without a command (0: at
once), when its socket file is removed or replaced, or on SIGTERM; a warm process of newer code in
the same home stops it. At most one runs per key (a lock file).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import importlib
import io
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from threadline.cli.launch import GO, HEADER, REPLY, lock_path, pid_path, short_address, socket_path

# What read commands import when they run; importing them here is the whole point of the process.
PRELOAD = (
    "threadline.cli.main",
    "threadline.config",
    "threadline.db.engine",
    "threadline.db.embedded",
    "threadline.read.views",
    "threadline.read.themes",
    "threadline.read.stories",
    "threadline.read.status",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    # masking what is shown (loaded by the first text with a digit) and what rendering it pulls in
    "threadline.text.pii",
    "phonenumbers",
    "phonenumbers.phonenumbermatcher",
    "stdnum.iban",
    "stdnum.luhn",
    "stdnum.us.rtn",
    "typer._adapters",
    "rich._emoji_codes",
    "unicodedata",
)
TICK_S = 5.0  # how often an idle warm process checks that its socket file is still its own
REQUEST_TIMEOUT_S = 5.0  # a launcher sends its request right after connecting
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # arguments and environment; far above any real one
BACKLOG = 16

logger = logging.getLogger("threadline.cli.warm")  # also when run as __main__


def _preload() -> None:
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:  # a library version without it: the command imports what it needs itself
            continue


def _lock(directory: Path, key: str) -> int | None:
    """This key's lock file descriptor, held for the process's life; None when another holds it."""
    descriptor = os.open(lock_path(directory, key), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _stop_outdated_warm_processes(directory: Path, key: str) -> None:
    """SIGTERM to this home's warm processes of other code (an edit, an upgrade), and remove lock files
    nobody holds. Warm processes of the same code for other environments stay until their idle end."""
    code = key.split("-", 1)[0]
    for pid_file in directory.glob("warm-*.pid"):
        other = pid_file.name.removeprefix("warm-").removesuffix(".pid")
        if other.split("-", 1)[0] == code:
            continue
        try:
            pid = int(pid_file.read_text(encoding="ascii"))
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                pid_file.unlink()
            continue
        # its command line names this module, this directory and that key: not a reused pid
        if (
            b"threadline.cli.warm" in arguments
            and os.fsencode(directory) in arguments
            and os.fsencode(other) in arguments
        ):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
    for lock_file in directory.glob("warm-*.lock"):
        if lock_file.name != lock_path(directory, key).name:
            _remove_if_free(lock_file)


def _remove_if_free(lock_file: Path) -> None:
    """Remove a key's lock file that no process holds (its warm process ended)."""
    try:
        descriptor = os.open(lock_file, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock_file.unlink()
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _listen(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead process's socket: we hold the key's lock, so nobody else listens there
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    address, directory = short_address(path)
    try:
        listener.bind(address)
    finally:
        os.close(directory)
    os.chmod(path, 0o600)
    listener.listen(BACKLOG)
    return listener


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino == inode
    except OSError:
        return False


def _peer_is_us(connection: socket.socket) -> bool:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _idle_s() -> float:
    """``cli_warm_idle_s`` from a settings object of its own: the cached one is each child's to read."""
    from threadline.config import Settings

    return Settings().cli_warm_idle_s


def _leave(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(directory: Path, key: str, lock: int | None = None) -> None:
    """Preload, then fork a child per command until idle for ``cli_warm_idle_s`` seconds.

    `lock` is the key's lock descriptor when the launcher took it for this process; else it is taken here.
    """
    os.chmod(directory, 0o700)  # the socket's directory is the user's alone, whoever created it first
    lock = _lock(directory, key) if lock is None else lock
    if lock is None:
        return
    _preload()
    try:
        idle_s = _idle_s()
    except ValueError:  # invalid settings: every command reports them itself
        return
    if idle_s <= 0:
        return
    if threading.active_count() != 1:
        return  # forking with threads running is unsafe; commands simply run in their own process
    gc.freeze()  # imported objects stay out of the children's collections (and copy-on-write)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, _leave)  # a newer warm process or a person: clean up the socket first
    path = socket_path(directory, key)
    pid_file = pid_path(directory, key)
    listener = _listen(path)
    listener.settimeout(min(TICK_S, idle_s))
    inode = os.stat(path).st_ino
    pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")
    _stop_outdated_warm_processes(directory, key)
    last_command = time.monotonic()
    try:
        while time.monotonic() - last_command < idle_s and _still_ours(path, inode):
            try:
                connection, _address = listener.accept()
            except TimeoutError:
                continue
            last_command = time.monotonic()
            if not _peer_is_us(connection):
                connection.close()
                continue
            if os.fork() == 0:
                _child(listener, lock, connection)  # never returns
            connection.close()
    finally:
        if _still_ours(path, inode):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            pid_file.unlink()
        listener.close()
        with contextlib.suppress(OSError):
            lock_path(directory, key).unlink()  # still held: a launcher racing it starts a new one, which is right


def _receive_request(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    connection.settimeout(REQUEST_TIMEOUT_S)
    header, descriptors, _flags, _address = socket.recv_fds(connection, HEADER.size, 3)
    if len(header) != HEADER.size or len(descriptors) != 3:
        raise ValueError("incomplete request")
    (length,) = HEADER.unpack(header)
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request too large")
    body = bytearray()
    while len(body) < length:
        chunk = connection.recv(min(65536, length - len(body)))
        if not chunk:
            raise ValueError("truncated request")
        body += chunk
    connection.settimeout(None)
    return json.loads(body.decode("ascii")), descriptors


def _text_stream(
    descriptor: int, mode: str, encoding: str | None, errors: str | None, write_through: bool = False
) -> io.TextIOWrapper:
    """A standard stream on `descriptor` as the interpreter would have opened it for the launcher."""
    interactive = os.isatty(descriptor)
    binary = io.FileIO(descriptor, mode + "b", closefd=False)
    unbuffered = mode == "w" and write_through  # the launcher's -u or PYTHONUNBUFFERED
    buffered: io.RawIOBase | io.BufferedIOBase = binary
    if not unbuffered:
        buffered = io.BufferedReader(binary) if mode == "r" else io.BufferedWriter(binary)
    return io.TextIOWrapper(
        buffered,  # type: ignore[arg-type]
        encoding=encoding or "utf-8",
        errors=errors or "strict",
        line_buffering=interactive or descriptor == 2,
        write_through=unbuffered,
    )


def _become_the_command(request: dict[str, Any], descriptors: list[int]) -> None:
    """Take the launcher's terminal, directory, environment and arguments, as a fresh process would."""
    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    streams = request["streams"]
    sys.stdin = _text_stream(0, "r", *streams["stdin"])
    sys.stdout = _text_stream(1, "w", *streams["stdout"])
    sys.stderr = _text_stream(2, "w", *streams["stderr"])
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = list(request["argv"])
    sys.path[:] = request["path"]
    sys.modules["__main__"].__package__ = request["main_package"]
    for signum in (signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in request["ignored_signals"]:  # `nohup`, a background job: ignored as they were for the launcher
        signal.signal(signum, signal.SIG_IGN)

    from threadline.cli.common import attach_consoles

    attach_consoles()


def _exit_code(exit_value: object) -> int:
    if exit_value is None:
        return 0
    if isinstance(exit_value, int):
        return exit_value
    sys.stderr.write(f"{exit_value}\n")
    return 1


def _child(listener: socket.socket, lock: int, connection: socket.socket) -> None:
    """The forked child: whatever happens, it ends here, never back in `serve` (whose cleanup is the parent's)."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's `_leave`
        os.setpgid(0, 0)  # its own process group: the launcher signals the command and what it starts
        listener.close()
        os.close(lock)
        _run_child(connection)
    finally:
        os._exit(1)


_command_ended = threading.Event()  # set in the child before it reports its exit code


def _hang_up_with_the_launcher(connection: socket.socket) -> None:
    """End this command when its launcher goes away (killed, or its terminal closed): run in process,
    the command would have ended with it. SIGTERM, which commands handle like Ctrl-C, since a hang-up
    may be ignored (`nohup`) while the launcher it was meant for is gone."""
    with contextlib.suppress(OSError):
        connection.recv(1)  # the launcher sends nothing more: this returns when it closes
    if not _command_ended.is_set():  # not the launcher leaving after the exit code
        os.killpg(0, signal.SIGTERM)  # the command and what it started


def _run_child(connection: socket.socket) -> None:
    """Run one command in this forked child and report its exit code; ends the process."""
    code = 1
    try:
        request, descriptors = _receive_request(connection)
        _become_the_command(request, descriptors)
        connection.sendall(REPLY.pack(b"P", os.getpid()))
        if connection.recv(len(GO)) != GO:
            raise ValueError("the launcher gave up")
    except (OSError, ValueError, KeyError, TypeError):
        os._exit(code)  # the launcher runs the command itself
    connection.settimeout(None)
    threading.Thread(target=_hang_up_with_the_launcher, args=(connection,), daemon=True).start()
    from threadline.cli.main import main

    try:
        main()
        code = 0
    except SystemExit as ended:
        code = _exit_code(ended.code)
    except KeyboardInterrupt:
        code = 130
    finally:
        logger.info("command answered by the warm process %d", os.getppid())
        atexit._run_exitfuncs()  # what interpreter exit would run: releasing the embedded server
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        _command_ended.set()
        with contextlib.suppress(OSError):
            connection.sendall(REPLY.pack(b"X", code))
        os._exit(code)


def main() -> None:
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)


if __name__ == "__main__":
    main()

"""The `threadline` console script: hands read commands to a warm process, runs the rest here.

Most of a read command's time is importing its libraries (SQLAlchemy, pydantic, typer, rich,
psycopg: ~0.5 s) before it asks the database anything. A *warm process* (`threadline.cli.warm`)
with those libraries already imported waits in the background for ``cli_warm_idle_s`` seconds; a
read command that finds none starts one as it begins (it imports on another core meanwhile) and
runs here. The next read command connects to it over a Unix
socket in ``$THREADLINE_HOME/cli/`` and passes its arguments, working directory, environment and
terminal (stdin, stdout, stderr as file descriptors); the warm process forks a child that runs
the command as `threadline.cli.main.main` would here, on those descriptors, and sends
back its exit code. This module loads only the standard library, so that path costs an
interpreter start and the command's own work.

Only commands that read and do not prompt go to the warm process (`is_warm_command`): a run,
an import, a report, a worker or the server run here. Signals to the launcher reach the command
(`_Forwarder`); the command's child hangs up when its launcher goes away.

A warm process serves one *key*, ``CODE-ENVIRONMENT``: the interpreter and its flags, the
modification times of Threadline's source files and of the import path's directories, and the
whole environment (every setting comes from it) except a terminal's session variables. A command
whose key differs runs here and starts a warm process for its own key: one for another
environment runs next to the first, one for other code stops those of the old code. Whenever the warm process cannot
take a command before the command started there (none running, it is stopping, the socket is
refused), the command runs here: read commands are safe to run again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from threadline.home import home_of, setting_variable

WARM_DIRECTORY = "cli"  # under THREADLINE_HOME: the warm process's socket, lock and pid files
WARM_MODULE = "threadline.cli.warm"
WARM_IDLE_VARIABLE = "THREADLINE_CLI_WARM_IDLE_S"  # the `cli_warm_idle_s` setting
STARTING_WAIT_S = 3.0  # longest wait for a starting warm process (its imports take ~0.5-1 s)
STARTING_POLL_S = 0.01
HANDSHAKE_TIMEOUT_S = 5.0  # from connecting to the child's pid: a fork, so far longer means trouble
EXIT_UNEXPECTED = 3  # as `threadline.cli.main.EXIT_UNEXPECTED`: the command's process died
# Variables a shell or terminal sets per session or per command without changing what a command does
# (the child still gets them): left out of the key, so two terminals share one warm process.
VOLATILE_VARIABLES = frozenset(
    {
        "PWD",
        "OLDPWD",
        "_",
        "SHLVL",
        "TMUX_PANE",
        "WINDOWID",
        "TERM_SESSION_ID",
        "ITERM_SESSION_ID",
        "SSH_CLIENT",
        "SSH_CONNECTION",
        "SSH_TTY",
        "GPG_TTY",
        "STY",
        "WINDOW",
        "XDG_SESSION_ID",
        "KONSOLE_DBUS_SESSION",
        "KONSOLE_DBUS_WINDOW",
        "KITTY_WINDOW_ID",
        "WEZTERM_PANE",
        "SSH_AUTH_SOCK",
        "INVOCATION_ID",  # systemd: one per service or timer run
        "JOURNAL_STREAM",
    }
)
VOLATILE_PREFIXES = ("VSCODE_",)
# Read-only, non-interactive commands by their path; `themes` and `stories` only without a
# subcommand (their subcommands rename, merge, change status).
READ_COMMANDS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("status",),
        ("themes",),
        ("stories",),
        ("stories", "history"),
        ("runs", "list"),
        ("runs", "show"),
        ("changes",),
        ("gaps",),
        ("conversations",),
        ("sources", "list"),
        ("sources", "show"),
        ("knowledge", "list"),
        ("trackers", "list"),
        ("schedules", "list"),
        ("notify", "list"),
        ("tokens", "list"),
        ("dlq", "list"),
    }
)
GROUP_SUBCOMMANDS: dict[tuple[str, ...], frozenset[str]] = {
    ("themes",): frozenset({"rename", "merge", "keep-separate"}),
    ("stories",): frozenset({"status", "history"}),
}
HEADER = struct.Struct("!I")  # length of the JSON request that follows the descriptors
REPLY = struct.Struct("!ci")  # b"P" + child pid, then b"X" + exit code
GO = b"G"  # launcher -> child, after b"P": run the command


def is_warm_command(arguments: list[str]) -> bool:
    """Whether the command only reads and never prompts, so a warm process may run it.

    Decided by the command's path (its first words), never by a word further on: `--help` after
    another command may be an option's value (`forget --customer --help` erases and prompts).
    """
    if not arguments or arguments[0] == "--help":
        return True
    for length in (2, 1):
        path = tuple(arguments[:length])
        if path in READ_COMMANDS:
            rest = arguments[length:]
            return not any(word in GROUP_SUBCOMMANDS.get(path, ()) for word in rest)
    return False


PACKAGE_DIRECTORY = Path(__file__).resolve().parent.parent  # threadline's sources, whose edits change the key


def code_key(package: Path = PACKAGE_DIRECTORY) -> str:
    """The interpreter and the code it would import: Threadline's sources and the import path's directories."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (sys.executable, sys.version, repr(sys.flags), repr(sys.warnoptions), repr(sys._xoptions)):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    for directory, subdirectories, files in os.walk(package):
        subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                found = os.stat(os.path.join(directory, name))
                digest.update(f"{directory}/{name}:{found.st_mtime_ns}:{found.st_size}\0".encode())
    # sys.path after the script's own directory follows from the interpreter and the environment; an
    # installed, upgraded or removed package changes the modification time of its directory
    for entry in sys.path[1:]:
        try:
            digest.update(f"{entry}:{os.stat(entry or '.').st_mtime_ns}\0".encode("utf-8", "surrogateescape"))
        except OSError:
            continue
    return digest.hexdigest()


def environment_key(environ: dict[str, str]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(environ):
        if name not in VOLATILE_VARIABLES and not name.startswith(VOLATILE_PREFIXES):
            digest.update(f"{name}={environ[name]}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def warm_key(environ: dict[str, str], package: Path = PACKAGE_DIRECTORY) -> str:
    """What a warm process must share with a command to run it: ``CODE-ENVIRONMENT`` (module docstring)."""
    return f"{code_key(package)}-{environment_key(environ)}"


def warm_directory(environ: dict[str, str]) -> Path:
    return (home_of(environ) / WARM_DIRECTORY).absolute()  # a relative THREADLINE_HOME is the caller's


def socket_path(directory: Path, key: str) -> Path:
    return directory / f"warm-{key}.sock"


def short_address(path: Path) -> tuple[str, int]:
    """An address for `path` within AF_UNIX's 107 bytes however long the home is, and the descriptor
    to close after binding or connecting: the path through an open descriptor of its directory."""
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{directory}/{path.name}", directory


def _connect(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(HANDSHAKE_TIMEOUT_S)
    try:
        address, directory = short_address(path)
    except OSError:
        client.close()
        return None
    try:
        client.connect(address)
        credentials = client.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        client.close()
        return None
    finally:
        os.close(directory)
    if struct.unpack("3i", credentials)[1] != os.getuid():  # our terminal and environment go to our own user only
        client.close()
        return None
    return client


def _stream_settings() -> dict[str, list[str | bool | None]]:
    """Encoding, errors and whether writes go straight through (``-u``, PYTHONUNBUFFERED) per stream."""
    return {
        name: [
            getattr(stream, "encoding", None),
            getattr(stream, "errors", None),
            getattr(stream, "write_through", False),
        ]
        for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))
    }


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _receive_reply(client: socket.socket) -> tuple[bytes, int] | None:
    data = b""
    while len(data) < REPLY.size:
        chunk = client.recv(REPLY.size - len(data))
        if not chunk:
            return None
        data += chunk
    kind, value = REPLY.unpack(data)
    return kind, value


def _standard_streams_open() -> bool:
    """Whether descriptors 0, 1 and 2 are open: a closed one would be taken by the socket and handed on."""
    try:
        for descriptor in (0, 1, 2):
            os.fstat(descriptor)
    except OSError:
        return False
    return True


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _ignored_signals() -> list[int]:
    return [int(signum) for signum in FORWARDED_SIGNALS if signal.getsignal(signum) == signal.SIG_IGN]


class _Forwarder:
    """Signals to the launcher go to the command's process, as a terminal would send them to both.

    Ctrl-Z stops the command too (SIGSTOP: it runs outside this terminal's sessions, where SIGTSTP would
    be discarded) and `fg` continues it. A signal that ended the command ends the launcher the same way.
    """

    def __init__(self, child: int, ignored: list[int]) -> None:
        self.child = child  # also its process group: what the command starts gets the signals too
        self.last: int | None = None
        for signum in FORWARDED_SIGNALS:
            if signum not in ignored:  # `nohup`, a background job: the command ignores them as well
                signal.signal(signum, self.forward)
        signal.signal(signal.SIGTSTP, self.stop)
        signal.signal(signal.SIGCONT, self.resume)

    def _send(self, signum: int) -> None:
        try:
            os.killpg(self.child, signum)
        except ProcessLookupError:
            pass

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        self.last = signum
        self._send(signum)

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._send(signal.SIGSTOP)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT (or at once if the kernel drops it)
        signal.signal(signal.SIGTSTP, self.stop)
        self._send(signal.SIGCONT)

    def resume(self, _signum: int, _frame: FrameType | None) -> None:
        self._send(signal.SIGCONT)

    def end_like_the_command(self) -> None:
        """After the command's process died of a forwarded signal: die of it too (exit status 128 + n)."""
        if self.last is not None:
            signal.signal(self.last, signal.SIG_DFL)
            os.kill(os.getpid(), self.last)


def run_warm(arguments: list[str], environ: dict[str, str], path: Path) -> int | None:
    """Run the command in the warm process at `path`; None when it could not start there."""
    if not _standard_streams_open():
        return None
    client = _connect(path)
    if client is None:
        return None
    ignored = _ignored_signals()
    with client:
        try:
            request = json.dumps(
                {
                    "argv": [sys.argv[0], *arguments],
                    "cwd": os.getcwd(),  # raises when the directory was removed: the command runs here
                    "umask": _umask(),  # files a command writes get this shell's permissions
                    "env": environ,
                    "path": sys.path,
                    # click names the program after `__main__`: `threadline`, or `python -m ...` when run so
                    "main_package": getattr(sys.modules["__main__"], "__package__", None),
                    "streams": _stream_settings(),
                    "ignored_signals": ignored,
                }
            ).encode("ascii")  # json.dumps escapes everything else, lone surrogates included
            socket.send_fds(client, [HEADER.pack(len(request))], [0, 1, 2])
            client.sendall(request)
            started = _receive_reply(client)
            if started is None or started[0] != b"P":
                return None
            forwarder = _Forwarder(started[1], ignored)
            # Only now may the child run the command: a launcher that gave up waiting (and runs the
            # command itself) closes the connection instead, so the command never runs twice.
            client.sendall(GO)
        except OSError:
            return None
        client.settimeout(None)  # the command takes as long as it takes; Ctrl-C is forwarded
        try:
            ended = _receive_reply(client)
        except OSError:
            ended = None
    if ended is None or ended[0] != b"X":
        forwarder.end_like_the_command()
        sys.stderr.write("error: the command's process ended unexpectedly; run it again\n")
        return EXIT_UNEXPECTED
    return ended[1]


def lock_path(directory: Path, key: str) -> Path:
    return directory / f"warm-{key}.lock"


def pid_path(directory: Path, key: str) -> Path:
    return directory / f"warm-{key}.pid"


def _starting(directory: Path, key: str) -> bool:
    """Whether a warm process holds the key's lock: it is importing and will listen shortly."""
    try:
        descriptor = os.open(lock_path(directory, key), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(descriptor)  # also releases a lock this call took
    return False


def wait_for_starting(directory: Path, key: str) -> None:
    """Wait (at most STARTING_WAIT_S) while the key's warm process is starting and not yet listening.

    Its imports are under way, so waiting for them costs less than doing them all again here.
    """
    serving = pid_path(directory, key)  # written once the warm process listens
    deadline = time.monotonic() + STARTING_WAIT_S
    while not serving.exists() and time.monotonic() < deadline and _starting(directory, key):
        time.sleep(STARTING_POLL_S)


def start_warm_process(directory: Path, key: str) -> None:
    """Start a detached warm process for `key` unless one serves it or is starting.

    The key's lock is taken here and handed to the new process (the same open file), so a command
    started right after this one already sees it starting and waits for it. The warm process
    leaves at once when ``cli_warm_idle_s`` is 0.
    """
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(lock_path(directory, key), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return  # the command itself succeeded; the next one runs here again
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # the launcher's -O, -W, -X ... too (what multiprocessing passes its children): they are part of the key
        flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
        subprocess.Popen(
            [sys.executable, *flags, "-m", WARM_MODULE, str(directory), key, str(lock)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(lock,),
            cwd=directory,
        )
    except OSError:
        return  # another warm process holds the key, or none could start: this command is done either way
    finally:
        os.close(lock)  # the lock stays with the warm process, which holds the same open file


def warm_process_off(environ: dict[str, str]) -> bool:
    """Whether ``cli_warm_idle_s`` is set to 0, read as the settings tree reads it (a float).

    Checked here, before any settings are loaded, so that `--help` and a first command with the warm
    process off start nothing; the warm process itself validates the whole settings tree and leaves
    when they are invalid.
    """
    value = setting_variable(environ, WARM_IDLE_VARIABLE)
    if value is None:
        return False
    try:
        return float(value) <= 0
    except ValueError:
        return False


def main() -> None:
    """The `threadline` command: through a warm process when one can run it, else in this process."""
    arguments = sys.argv[1:]
    if not is_warm_command(arguments) or sys.platform != "linux":
        _run_here()
        return
    environ = dict(os.environ)
    key = warm_key(environ)
    directory = warm_directory(environ)
    wait_for_starting(directory, key)
    code = run_warm(arguments, environ, socket_path(directory, key))
    if code is not None:
        sys.exit(code)
    if not warm_process_off(environ):
        start_warm_process(directory, key)  # before the command: it imports on another core meanwhile
    _run_here()


def _run_here() -> None:
    from threadline.cli.main import main as run_command

    run_command()


if __name__ == "__main__":
    main()

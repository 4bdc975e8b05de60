"""The embedded server's keeper: keeps it up for an idle grace period after the last command.

Started detached by `threadline.db.embedded.start_embedded` (``python -m threadline.db.keeper
PGDATA GRACE_S``) and entered in pgserver's holder list by the process that starts it, so the
server's usual "the last holder stops it" rule never fires while the keeper lives. The keeper
looks at the holder list every `POLL_S` seconds under the data directory's own lock (the one
every command takes to join the server, so none joins while the keeper decides to stop it): while
any other living process holds the server it waits; once it has been the only holder for the grace period it
stops the server and exits. It also exits, leaving the server alone, when it is no longer in the
holder list (`threadline db stop` took it out) or the server is no longer running.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from threadline.db.embedded import (
    KEEPER_PID_FILE,
    data_dir_lock,
    postmaster_pid,
    prune_dead_holders,
    read_holders,
    stop_server,
    write_holders,
)

logger = logging.getLogger(__name__)

POLL_S = 0.5  # seconds between looks at the holder list: how late past the grace the server may stop; cheap


def _leave(pgdata: Path, me: int) -> None:
    """Take this keeper out of the holder list and remove its pid file if it still names this process.

    Call under `data_dir_lock`.
    """
    write_holders(pgdata, [pid for pid in read_holders(pgdata) if pid != me])
    pid_file = pgdata / KEEPER_PID_FILE
    try:
        if int(pid_file.read_text().strip()) == me:
            pid_file.unlink()
    except (OSError, ValueError):
        pass


def keep(pgdata: Path, idle_grace_s: float, poll_s: float = POLL_S) -> str:
    """Watch the server in `pgdata` until it should stop or is no longer ours; returns why it ended."""
    me = os.getpid()
    idle_since: float | None = None
    while True:
        time.sleep(poll_s)
        with data_dir_lock(pgdata):
            alive = prune_dead_holders(pgdata)
            if me not in alive:
                return "taken out of the holder list"
            if postmaster_pid(pgdata) is None:
                _leave(pgdata, me)
                return "the server is no longer running"
            if any(pid != me for pid in alive):
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = now if idle_since is None else idle_since
            if now - idle_since >= idle_grace_s:
                stop_server(pgdata)
                _leave(pgdata, me)
                return f"idle for {idle_grace_s:g} s: server stopped"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pgdata, idle_grace_s = Path(args[0]), float(args[1])
    logger.info("keeper %d: keeping the server up for %g s after its last user", os.getpid(), idle_grace_s)
    reason = keep(pgdata, idle_grace_s)
    logger.info("keeper %d: exiting (%s)", os.getpid(), reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

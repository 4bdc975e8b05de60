"""Paths and commands shared by tests (import as `from support import ...`)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples" / "conversations.jsonl"
SCREENSHOTS = REPO / "tests" / "web" / "screenshots"  # browser tests save their pages here (gitignored)


def threadline_command() -> list[str]:
    """The `threadline` CLI of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "threadline.cli.main"]

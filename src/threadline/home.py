"""Where an installation keeps its data, found without loading the settings tree.

`threadline.config` uses it for the default of ``home``; the CLI's launcher uses it to find the
warm command process of this home before any heavy library is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_VARIABLE = "THREADLINE_HOME"


def default_home() -> Path:
    """XDG data directory for Threadline (``$XDG_DATA_HOME/threadline`` or ``~/.local/share/threadline``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "threadline"


def setting_variable(environ: Mapping[str, str], variable: str) -> str | None:
    """The value of the environment variable ``variable`` (upper case) under any case of its name,
    as pydantic-settings reads it; None when unset."""
    return next((value for name, value in environ.items() if name.upper() == variable), None)


def home_of(environ: Mapping[str, str]) -> Path:
    """The ``home`` setting as the settings tree reads it: ``THREADLINE_HOME``, else the default."""
    value = setting_variable(environ, HOME_VARIABLE)
    return Path(value) if value is not None else default_home()

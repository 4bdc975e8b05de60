"""Where the shared data and vendor API descriptions are: `../shared` beside the repository.

`THREADLINE_SHARED_DIR` overrides it (another checkout layout). Tests that need the data skip
with a clear message when it is absent; benchmarks fail with that message.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]  # testing/threadline_testing/paths.py -> the repository


def shared_dir() -> Path:
    """`../shared` of the repository, or `THREADLINE_SHARED_DIR`."""
    return Path(os.environ.get("THREADLINE_SHARED_DIR", str(REPOSITORY.parent / "shared")))


def spec_path(*parts: str) -> Path:
    """A vendor API description under `shared/specs/` (e.g. `spec_path("intercom", "api.intercom.io.2.16.yaml")`)."""
    return shared_dir().joinpath("specs", *parts)

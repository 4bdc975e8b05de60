"""Local stand-in of the Intercom REST API (2.16) for tests and benchmarks.

`create_app(StandinConfig(...))` returns a Starlette ASGI app; `Workspace` is its data.
"""

from threadline_testing.intercom.app import StandinConfig, StandinStats, create_app
from threadline_testing.intercom.data import Workspace, WorkspaceSpec

__all__ = ["StandinConfig", "StandinStats", "Workspace", "WorkspaceSpec", "create_app"]

"""Local stand-in of Zendesk's Support API (incremental ticket export, comments, users) for tests and benchmarks.

`create_app(StandinConfig(...))` returns a Starlette ASGI app; `Account` is its data. The
documented facts it is built on are listed in `threadline_testing.zendesk.app`.
"""

from threadline_testing.zendesk.app import StandinConfig, StandinStats, create_app
from threadline_testing.zendesk.data import Account, AccountSpec

__all__ = ["Account", "AccountSpec", "StandinConfig", "StandinStats", "create_app"]

"""HTTP API and dashboard: `create_app` builds the FastAPI application served by `threadline serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily so `import threadline.api` stays cheap for the CLI
    from fastapi import FastAPI


def create_app(*args, **kwargs) -> FastAPI:
    """See `threadline.app.create_app`."""
    from threadline.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]

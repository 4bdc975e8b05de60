"""`threadline serve` (the HTTP API and dashboard) and `threadline tokens` (API token management)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from threadline.cli.common import console, emit_json, engine, fail, get_settings

tokens_app = typer.Typer(help="API tokens for the HTTP API and the dashboard sign-in.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add `serve` and `tokens` to the `threadline` command."""
    app.command("serve")(serve_command)
    app.add_typer(tokens_app, name="tokens")


def serve_command(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind (default THREADLINE_API_HOST: loopback only).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="TCP port (0: any free port; default THREADLINE_API_PORT).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (one per core helps under load).")] = 1,
) -> None:
    """Serve the HTTP API (/api, OpenAPI schema at /openapi.json) and the dashboard (/). Runs are done by `threadline worker`.

    Access logs are off: request lines carry search queries, which are customer text.
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    import uvicorn

    limits = get_settings().api
    if workers > limits.max_server_workers:
        raise fail(f"--workers is at most {limits.max_server_workers} (THREADLINE_API_MAX_SERVER_WORKERS)")
    engine()  # start the embedded server and migrate once, before any server process starts
    uvicorn.run(
        "threadline.app:create_app",
        factory=True,
        host=limits.host if host is None else host,
        port=limits.port if port is None else port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
    )


@tokens_app.command("create")
def tokens_create(name: Annotated[str, typer.Argument(help="A name for whoever or whatever uses the token.")]) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.server.tokens import TokenError, create_token

    try:
        with session_scope(engine()) as session:
            token = create_token(session, name)
    except TokenError as exc:
        raise fail(str(exc)) from None
    console.print(token, markup=False, highlight=False)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="Name of the token to revoke.")]) -> None:
    """Revoke a token: API calls and dashboard sessions made with it stop working at once."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.server.tokens import revoke_token

    with session_scope(engine()) as session:
        revoked = revoke_token(session, name)
    if not revoked:
        raise fail(f"no active token named {name!r}", code=1)
    console.print(f"revoked {name}")


@tokens_app.command("list")
def tokens_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Token names with created / last used / revoked times (never the tokens)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import session_scope
    from threadline.server.tokens import list_tokens

    with session_scope(engine()) as session:
        rows = list_tokens(session)
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            row["name"],
            *[(row[k].isoformat()[:19] if row[k] else "") for k in ("created_at", "last_used_at", "revoked_at")],
        )
    console.print(table)

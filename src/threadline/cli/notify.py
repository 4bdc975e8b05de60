"""`threadline notify add webhook|slack`, `notify list`, `notify remove`: where run digests are sent.

URLs and signing secrets are never options: a channel's configuration names the environment
variables that hold them (like trackers' tokens), read by whichever process delivers.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from threadline.cli.common import console, emit_json, engine, fail, plain
from threadline.cli.options import configured_table

EXIT_FAILED = 2  # the channel could not be added or found

notify_app = typer.Typer(
    help="Notification channels for run digests (new, growing, recurring themes): add, list, remove.",
    no_args_is_help=True,
)
add_app = typer.Typer(help="Add a notification channel.", no_args_is_help=True)
notify_app.add_typer(add_app, name="add")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
NameOption = Annotated[str, typer.Option("--name", help="Name of the channel (dead letters: notify.NAME).")]
UrlEnvOption = Annotated[str, typer.Option("--url-env", help="Environment variable holding the URL.")]


def _add(kind: str, name: str, values: dict[str, Any], as_json: bool) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.notifications import ChannelConfigError, add_channel

    try:
        with Session(engine()) as session, session.begin():
            channel = add_channel(session, kind, name, values)
            row: dict[str, Any] = {
                "id": channel.id,
                "name": channel.name,
                "kind": channel.kind,
                "config": dict(channel.config),
            }
    except ChannelConfigError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if as_json:
        emit_json(row)
        return
    variables = ", ".join(f"${value}" for key, value in row["config"].items() if key.endswith("_env"))
    console.print(plain(f"{kind} channel {name} (id {row['id']}); reads {variables}"))


@add_app.command("webhook")
def add_webhook(
    name: NameOption,
    url_env: UrlEnvOption,
    secret_env: Annotated[
        str | None,
        typer.Option("--secret-env", help="Environment variable holding the HMAC-SHA256 signing secret."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A generic webhook: the digest as JSON, signed (Threadline-Signature) when a secret variable is named."""
    _add("webhook", name, {"url_env": url_env, "secret_env": secret_env}, as_json)


@add_app.command("slack")
def add_slack(name: NameOption, url_env: UrlEnvOption, as_json: JsonOption = False) -> None:
    """A Slack incoming webhook: the digest as a Block Kit message."""
    _add("slack", name, {"url_env": url_env}, as_json)


@notify_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Channels with their kind and configuration (variable names, never URLs or secrets)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.notifications import list_channels

    with Session(engine()) as session:
        rows = list_channels(session)
    if as_json:
        emit_json(rows)
        return
    console.print(configured_table(rows))


@notify_app.command("remove")
def remove_command(
    name: Annotated[str, typer.Argument(help="Name of the channel to remove.")], as_json: JsonOption = False
) -> None:
    """Remove a channel and its stored digests."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.exporters.notifications import remove_channel

    with Session(engine()) as session, session.begin():
        removed = remove_channel(session, name)
    if as_json:
        emit_json({"channel": name, "removed": removed})
    if not removed:
        raise fail(f"no notification channel named {name!r}", EXIT_FAILED)
    if not as_json:
        console.print(plain(f"channel {name} removed"))


def register(app: typer.Typer) -> None:
    """Add `notify` to the `threadline` command."""
    app.add_typer(notify_app, name="notify")

"""Command-line options generated from a plugin's configuration model, and the table of configured plugins.

`sources add KIND`, `knowledge add KIND` and `trackers add KIND` each have one option per field
of the plugin's pydantic configuration model, so a new connector or exporter needs no CLI code.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from threadline.cli.common import plain

if TYPE_CHECKING:  # for annotations only: pydantic loads with the plugin whose model is read
    from pydantic import BaseModel


def option_type(annotation: Any) -> Any:
    """The option type of a configuration field: an Enum of choices for a Literal, else the scalar type."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return enum.Enum("Choice", {str(a): str(a) for a in args}, type=str)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return option_type(args[0])
    return annotation if annotation in (int, float, bool) else str


def config_parameters(config_model: type[BaseModel], name_help: str) -> list[inspect.Parameter]:
    """Keyword parameters for a generated `add` command: `--name` plus one option per field of `config_model`."""
    parameters = [
        inspect.Parameter(
            "name",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[str, typer.Option("--name", help=name_help)],
        )
    ]
    for field_name, field in config_model.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        help_text = (field.description or "") + (f" (default: {default})" if default is not None else "")
        option = typer.Option("--" + field_name.replace("_", "-"), help=help_text, show_default=False)
        annotation = Annotated[option_type(field.annotation) | None, option]  # type: ignore[valid-type]
        parameters.append(
            inspect.Parameter(field_name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        )
    return parameters


def configured_table(rows: Iterable[Mapping[str, Any]]) -> Table:
    """Configured plugins (id, name, kind, configuration: variable names, never secrets) as a table."""
    table = Table("id", "name", "kind", "configuration")
    for row in rows:
        config = ", ".join(f"{k}={v}" for k, v in row["config"].items())
        table.add_row(plain(str(row["id"])), plain(row["name"]), plain(row["kind"]), plain(config))
    return table

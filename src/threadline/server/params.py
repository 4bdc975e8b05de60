"""Pagination shared by every list endpoint: bounded limit/offset in, a `Page` out.

Bounds that are settings are enforced by `AtMost`, which reads the settings tree when a
request is validated and when the OpenAPI schema is generated, so no bound is frozen at
import and the schema always states the running server's limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Path, Query, Request
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError, core_schema
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.read.views import RunRef, ViewError, pick_run
from threadline.text.safety import unstorable

DEFAULT_PAGE_SIZE = 50  # rows: a screenful; part of the API contract (documented default), not a setting

T = TypeVar("T")


@dataclass(frozen=True)
class AtMost:
    """Annotated metadata: a number at most, or a string at most as long as, `bound()` (a setting).

    Put it on the non-optional type (`Annotated[str, AtMost(...)] | None`) so the schema's
    bound lands on the string, not on the union.

    Validation errors are pydantic's own (`less_than_equal`, `string_too_long`), so clients
    see the same error as for a fixed `le=`/`max_length=`; the JSON schema gets
    `maximum`/`maxLength` from the same setting.
    """

    bound: Callable[[], int]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def check(value: Any) -> Any:
            if value is None:
                return value
            limit = self.bound()
            if isinstance(value, str):
                if len(value) > limit:
                    raise PydanticKnownError("string_too_long", {"max_length": limit})
            elif value > limit:
                raise PydanticKnownError("less_than_equal", {"le": limit})
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        json_schema = handler(schema)
        json_schema["maxLength" if json_schema.get("type") == "string" else "maximum"] = self.bound()
        return json_schema


def storable(value: Any) -> Any:
    """A string PostgreSQL can store and search (no NUL, no lone surrogate): 422 otherwise, never a 500."""
    if isinstance(value, str):
        problem = unstorable(value)
        if problem:
            raise PydanticCustomError("unstorable_text", "text {problem}", {"problem": problem})
    return value


STORABLE = AfterValidator(storable)  # on form fields and any string parameter that reaches SQL


def _storable_tree(value: Any, depth: int = 0) -> None:
    """Raise on the first unstorable string anywhere in a decoded JSON body (keys included)."""
    if isinstance(value, str):
        storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_tree(key, depth + 1)
            _storable_tree(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable_tree(item, depth + 1)


class RequestBody(BaseModel):
    """Base of every JSON request model: any string in it, at any depth, must be storable (else 422)."""

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: Any) -> Any:
        _storable_tree(data)
        return data


async def storable_query(request: Request) -> None:
    """An app-wide dependency: a query parameter (name or value) with a NUL is refused with 422 before any route runs."""
    for key, value in request.query_params.multi_items():
        if unstorable(key) or unstorable(value):
            raise HTTPException(
                422, detail=f"query parameter {key[:40]!r} contains a NUL character".replace("\x00", "")
            )


WITHIN_LIST_LIMIT = AtMost(lambda: get_settings().read.max_list_limit)
WITHIN_MAX_OFFSET = AtMost(lambda: get_settings().api.max_offset)
WITHIN_QUERY_CHARS = AtMost(lambda: get_settings().read.max_query_chars)
WITHIN_TITLE_CHARS = AtMost(lambda: get_settings().api.max_title_chars)
WITHIN_STORY_TEXT_CHARS = AtMost(lambda: get_settings().api.max_story_text_chars)

MAX_ENTITY_FILTER_CHARS = 200  # characters of an entity filter: a type and a value, far longer than any stored one
EntityQuery = Annotated[
    Annotated[str, STORABLE] | None,
    Query(
        max_length=MAX_ENTITY_FILTER_CHARS,
        description='Only conversations mentioning this entity: a value ("ios", any case) or type:value '
        '("platform:ios", "plan:business").',
    ),
]

LimitQuery = Annotated[
    int, Query(ge=1, description="Rows per page (at most the server's list limit)."), WITHIN_LIST_LIMIT
]
OffsetQuery = Annotated[int, Query(ge=0, description="Rows to skip."), WITHIN_MAX_OFFSET]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_offset` is null on the last page."""

    items: list[T]
    limit: Annotated[int, Field(ge=1), WITHIN_LIST_LIMIT]
    offset: int = Field(ge=0)
    next_offset: int | None = None


def page_of(rows: list, limit: int, offset: int) -> dict:
    """A page from rows fetched with `limit + 1` (the extra row only says there is more)."""
    more = len(rows) > limit
    return {"items": rows[:limit], "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


MAX_ID = 2**63 - 1  # largest BIGINT: ids beyond it cannot exist, so they are rejected before reaching SQL
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Row id.")]


RunQuery = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Run whose snapshot to show (default: the latest succeeded run).")
]
SourcesQuery = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] | None,
    Query(
        max_length=100,
        description="Scope: exactly these sources (repeat the parameter); default: the scope of the latest run.",
    ),
]


def pick_or_error(session: Session, run_id: int | None, sources: list[str] | None) -> RunRef | None:
    """The run a request asks to see (`read.views.pick_run`), or an HTTP error saying what to ask instead."""
    try:
        return pick_run(session, run_id=run_id, sources=sources)
    except ViewError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None

"""Pagination shared by every list endpoint: bounded limit/offset in, a `Page` out."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, Field

from threadline.config import MAX_LIST_LIMIT

DEFAULT_PAGE_SIZE = 50  # rows: a screenful; clients ask for more up to MAX_LIST_LIMIT
MAX_OFFSET = 1_000_000  # rows: deeper offsets cost a scan each; narrow the filter instead

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description=f"Rows per page (1..{MAX_LIST_LIMIT}).")]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_offset` is null on the last page."""

    items: list[T]
    limit: int = Field(ge=1, le=MAX_LIST_LIMIT)
    offset: int = Field(ge=0)
    next_offset: int | None = None


def page_of(rows: list, limit: int, offset: int) -> dict:
    """A page from rows fetched with `limit + 1` (the extra row only says there is more)."""
    more = len(rows) > limit
    return {"items": rows[:limit], "limit": limit, "offset": offset, "next_offset": offset + limit if more else None}


MAX_ID = 2**63 - 1  # largest BIGINT: ids beyond it cannot exist, so they are rejected before reaching SQL
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Row id.")]

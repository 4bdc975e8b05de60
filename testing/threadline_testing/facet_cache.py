"""An in-memory `FacetCache` for tests and benchmarks (the product caches facets in `analyses`)."""

from __future__ import annotations

from threadline.ai.llm.facets import Facets


class InMemoryFacetCache:
    """Dict-backed cache for tests and benchmarks; same keys as the database."""

    def __init__(self) -> None:
        self._data: dict[str, Facets] = {}

    def get(self, key: str) -> Facets | None:
        """Stored facets for `key`, or None."""
        return self._data.get(key)

    def put(self, key: str, facets: Facets) -> None:
        """Store facets under `key`."""
        self._data[key] = facets

    def __len__(self) -> int:
        return len(self._data)

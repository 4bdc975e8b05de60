"""Plugin registries: stages, connectors and exporters are found through Python entry points.

Threadline's own plugins are declared in its `pyproject.toml` exactly like a third party's
would be (as `llm` and `datasette` do), so adding one is its module plus one registration
line, and nothing else keeps a list of names. A registry loads its entry-point group once
per process, on first use, so commands that never need a plugin never import one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class UnknownPlugin(LookupError):
    """No plugin of that name is registered in the group."""


class Registry(Generic[T]):
    """Named plugin objects of one entry-point group, loaded lazily and checked once."""

    def __init__(self, group: str, *, name_of: Callable[[T], str], check: Callable[[object], bool]) -> None:
        self.group = group
        self._name_of = name_of
        self._check = check
        self._lock = threading.Lock()
        self._plugins: dict[str, T] | None = None

    def _load(self) -> dict[str, T]:
        with self._lock:
            if self._plugins is None:
                plugins: dict[str, T] = {}
                for point in sorted(entry_points(group=self.group), key=lambda p: p.name):
                    plugin = point.load()
                    if not self._check(plugin):
                        raise TypeError(
                            f"entry point {point.name!r} of {self.group} is not a valid plugin: {point.value}"
                        )
                    name = self._name_of(plugin)
                    if name != point.name:
                        raise TypeError(f"entry point {point.name!r} of {self.group} registers a plugin named {name!r}")
                    plugins[name] = plugin
                self._plugins = plugins
                logger.debug("%s: %s", self.group, ", ".join(plugins) or "(none)")
            return self._plugins

    def get(self, name: str) -> T:
        """The plugin called `name`; `UnknownPlugin` when none is registered."""
        try:
            return self._load()[name]
        except KeyError:
            known = ", ".join(self._load()) or "none"
            raise UnknownPlugin(f"no {self.group} plugin named {name!r} (registered: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[T]:
        return iter(self._load().values())

    def names(self) -> list[str]:
        return list(self._load())

"""The GitHub exporter paces content creation to the secondary limit instead of waiting out refusals."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from threadline.config import get_settings
from threadline.exporters.base import TrackerItem
from threadline.exporters.github import GitHubClient, GitHubTrackerConfig

SCALE = 0.005  # the stand-in's minute lasts 0.3 s, its hour 18 s
PER_MINUTE = 5  # creations per (scaled) minute: small, so a dozen creates cross three windows


def _item(n: int) -> TrackerItem:
    return TrackerItem(marker=f"s{n}", title=f"Problem {n}", problem="Exports fail.", facts={})


def test_creates_are_paced_to_the_secondary_limit(github_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """12 concurrent creations at 5 per scaled minute: none refused (without pacing GitHub refuses 7)."""
    gh = github_server(time_scale=SCALE, secondary_per_minute=PER_MINUTE, secondary_per_hour=500)
    monkeypatch.setenv("THREADLINE_TRACKERS_GITHUB_CREATES_PER_MINUTE", str(PER_MINUTE))
    monkeypatch.setenv("THREADLINE_TRACKERS_GITHUB_CREATE_MINUTE_S", str(60 * SCALE))
    get_settings.cache_clear()
    try:

        async def go() -> None:
            async with httpx.AsyncClient(base_url=gh.url, headers=gh.auth) as http:
                client = GitHubClient(http, GitHubTrackerConfig(repo="acme/widgets", token_env="GH_TOKEN"))
                await asyncio.gather(*(client.create(_item(n)) for n in range(12)))

        asyncio.run(go())
    finally:
        get_settings.cache_clear()
    assert gh.stats.created == 12
    assert gh.stats.secondary_limited == 0

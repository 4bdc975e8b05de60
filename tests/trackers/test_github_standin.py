"""The GitHub stand-in, driven over loopback with plain httpx; every exchange is spec-validated."""

from __future__ import annotations

import time

import pytest
from threadline_testing.contract import CapturedRequest, CapturedResponse
from threadline_testing.trackers.common import Faults
from threadline_testing.trackers.github import (
    SECONDARY_CREATES_PER_HOUR,
    SECONDARY_CREATES_PER_MINUTE,
    GitHubWorld,
)
from threadline_testing.trackers.specs import github_validator

REPO = "/repos/acme/widgets"
MARKER = "threadline:story=5f2c9a"


def _create(client, title: str = "Checkout fails", body: str = f"Problem\n<!-- {MARKER} -->", **extra):
    return client.post(f"{REPO}/issues", json={"title": title, "body": body, **extra})


def test_create_get_update_comment_close(github_server) -> None:
    gh = github_server()
    with gh.client() as client:
        assert client.get("/user").json()["login"] == "threadline-bot"
        assert client.get(REPO).json()["full_name"] == "acme/widgets"
        created = _create(client, labels=["threadline"])
        assert created.status_code == 201
        issue = created.json()
        assert issue["number"] == 1 and issue["state"] == "open" and issue["state_reason"] is None
        assert created.headers["location"].endswith(f"{REPO}/issues/1")
        assert [lab["name"] for lab in issue["labels"]] == ["threadline"]

        patched = client.patch(f"{REPO}/issues/1", json={"body": "new body", "title": "Checkout fails (12)"})
        assert patched.json()["title"] == "Checkout fails (12)"
        comment = client.post(f"{REPO}/issues/1/comments", json={"body": "3 new conversations"}).json()
        edited = client.patch(f"{REPO}/issues/comments/{comment['id']}", json={"body": "4 new conversations"})
        assert edited.json()["body"] == "4 new conversations"
        assert [c["body"] for c in client.get(f"{REPO}/issues/1/comments").json()] == ["4 new conversations"]

        closed = client.patch(f"{REPO}/issues/1", json={"state": "closed", "state_reason": "not_planned"}).json()
        assert closed["state"] == "closed" and closed["state_reason"] == "not_planned" and closed["closed_at"]
        reopened = client.patch(f"{REPO}/issues/1", json={"state": "open"}).json()
        assert reopened["state_reason"] == "reopened" and reopened["closed_at"] is None
        assert client.get(f"{REPO}/issues/99").status_code == 404
        assert _create(client, title="").status_code == 422


def test_person_hooks_close_and_edit(github_server) -> None:
    gh = github_server()
    with gh.client() as client:
        _create(client)
        gh.world.close_as_person(1, reason="completed")
        gh.world.edit_body_as_person(1, lambda body: body + "\n\nA person's note")
        issue = client.get(f"{REPO}/issues/1").json()
        assert issue["state"] == "closed" and issue["state_reason"] == "completed"
        assert issue["closed_by"]["login"] == "a-person"
        assert issue["body"].endswith("A person's note") and MARKER in issue["body"]


def test_search_finds_issue_by_hidden_marker(github_server) -> None:
    gh = github_server()
    with gh.client() as client:
        _create(client, title="Other", body="no marker here")
        _create(client)
        q = f'repo:acme/widgets "{MARKER}" in:body is:issue'
        found = client.get("/search/issues", params={"q": q}).json()
        assert found["total_count"] == 1 and found["items"][0]["number"] == 2
        assert client.get("/search/issues", params={"q": f'repo:acme/other "{MARKER}"'}).json()["total_count"] == 0
        assert client.get("/search/issues", params={"q": f'"{MARKER}" in:title'}).json()["total_count"] == 0
        gh.world.close_as_person(2)
        assert client.get("/search/issues", params={"q": f'"{MARKER}" is:open'}).json()["total_count"] == 0
        search = client.get("/search/issues", params={"q": f'"{MARKER}" is:closed'})
        assert search.json()["total_count"] == 1
        assert search.headers["x-ratelimit-resource"] == "search" and search.headers["x-ratelimit-limit"] == "30"


def test_search_lags_like_githubs_index(github_server) -> None:
    gh = github_server(search_lag_seconds=60)
    with gh.client() as client:
        _create(client)
        assert client.get("/search/issues", params={"q": f'"{MARKER}"'}).json()["total_count"] == 0


def test_refused_token_gets_githubs_401(github_server) -> None:
    gh = github_server()
    with gh.client(auth={"Authorization": "Bearer wrong"}) as client:
        refused = client.get("/user")
    assert refused.status_code == 401
    assert refused.json()["message"] == "Bad credentials" and refused.json()["status"] == "401"
    assert gh.stats.unauthorized == 1


def test_pagination_with_link_headers(github_server) -> None:
    gh = github_server()
    for n in range(7):
        gh.world.create_issue(f"issue {n}", None, "a-person")
    with gh.client() as client:
        first = client.get(f"{REPO}/issues", params={"per_page": 3, "direction": "asc"})
        assert [i["number"] for i in first.json()] == [1, 2, 3]
        links = first.links
        assert set(links) == {"next", "last"} and "page=3" in links["last"]["url"]
        numbers = [i["number"] for i in first.json()]
        url = links["next"]["url"]
        while url:
            page = client.get(url)
            numbers += [i["number"] for i in page.json()]
            assert "prev" in page.links and "first" in page.links
            url = page.links.get("next", {}).get("url")
        assert numbers == list(range(1, 8))
        assert len(client.get(f"{REPO}/issues", params={"per_page": 500}).json()) == 7  # capped at 100


def test_primary_limit_headers_and_exhaustion(github_server) -> None:
    gh = github_server(primary_limit=3, primary_limit_status=429)
    with gh.client() as client:
        answers = [client.get(f"{REPO}/issues") for _ in range(4)]
        rate = client.get("/rate_limit").json()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-used"] == "1" and answers[0].headers["x-ratelimit-resource"] == "core"
    assert int(answers[3].headers["x-ratelimit-reset"]) >= int(time.time())
    assert "rate limit exceeded" in answers[3].json()["message"]
    assert rate["resources"]["core"] == {**rate["rate"], "remaining": 0, "used": 3, "limit": 3}


def test_secondary_limit_on_content_creation(github_server) -> None:
    """80 creations per minute: the 81st gets 403 + retry-after; reads are not limited by it."""
    gh = github_server(time_scale=1.0)
    with gh.client() as client:
        statuses = [_create(client, title=f"t{n}").status_code for n in range(SECONDARY_CREATES_PER_MINUTE + 1)]
        refused = _create(client, title="one more")
        read = client.get(f"{REPO}/issues/1")
    assert statuses[:-1] == [201] * SECONDARY_CREATES_PER_MINUTE and statuses[-1] == 403
    assert refused.status_code == 403 and "secondary rate limit" in refused.json()["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert read.status_code == 200
    assert gh.stats.created == SECONDARY_CREATES_PER_MINUTE and gh.stats.secondary_limited == 2


def test_secondary_limit_hourly_window_scaled(github_server) -> None:
    """time_scale 0.005: the minute is 0.3 s and the hour 18 s, still 80 and 500 creations per window."""
    gh = github_server(time_scale=0.005, secondary_per_minute=5, secondary_per_hour=8)
    created = 0
    with gh.client() as client:
        deadline = time.monotonic() + 5
        while created < 8 and time.monotonic() < deadline:
            answer = _create(client, title=f"t{created}")
            if answer.status_code == 201:
                created += 1
            else:
                assert answer.status_code == 403 and "retry-after" in answer.headers
                time.sleep(0.05)
        assert created == 8
        hourly = _create(client, title="over the hour")
    assert hourly.status_code == 403 and int(hourly.headers["retry-after"]) >= 1
    assert SECONDARY_CREATES_PER_MINUTE == 80 and SECONDARY_CREATES_PER_HOUR == 500  # the documented numbers


def test_injected_faults(github_server) -> None:
    gh = github_server(faults=Faults(error_5xx_share=0.3, error_429_share=0.3, seed=3))
    with gh.client() as client:
        statuses = [client.get(f"{REPO}/issues").status_code for _ in range(40)]
        limited = next(a for a in (client.get(REPO) for _ in range(40)) if a.status_code == 429)
    assert {200, 429, 503} <= set(statuses)
    assert limited.headers["retry-after"] == "1"
    assert gh.stats.injected_429 >= 1 and gh.stats.injected_5xx >= 1


def test_validator_catches_a_wrong_response() -> None:
    """The GitHub contract is live: an issue without `number` or with a bad state_reason is caught."""
    validator = github_validator()
    request = CapturedRequest(
        "GET", f"{REPO}/issues/1", "", {"Authorization": "Bearer x"}, b"", "https://api.github.com"
    )
    found = validator.check(request, CapturedResponse(200, {"Content-Type": "application/json"}, b'{"id": 1}'))
    assert [v.side for v in found] == ["response"]
    bad_patch = CapturedRequest(
        "PATCH",
        f"{REPO}/issues/1",
        "",
        {"Authorization": "Bearer x", "Content-Type": "application/json"},
        b'{"state": "done"}',
        "https://api.github.com",
    )
    found = validator.check(bad_patch, CapturedResponse(422, {"Content-Type": "application/json"}, b"{}"))
    assert "request" in [v.side for v in found]


@pytest.mark.parametrize("state", ["closed", "open"])
def test_world_state_hooks_are_idempotent(state: str) -> None:
    world = GitHubWorld()
    issue = world.create_issue("t", None, "bot")
    world.set_state(issue.number, state, None, "bot")
    world.set_state(issue.number, state, None, "bot")
    assert issue.state == state

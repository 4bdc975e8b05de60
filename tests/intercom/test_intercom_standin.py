"""The stand-in answers like Intercom (every exchange here is also contract-checked)."""

from __future__ import annotations

import asyncio
import time

import pytest
from threadline_testing.intercom import WorkspaceSpec
from threadline_testing.intercom.data import PARTS_CAP


def run(coro):
    return asyncio.run(coro)


def _range_query(field: str, since: int, until: int) -> dict:
    return {
        "operator": "AND",
        "value": [
            {
                "operator": "OR",
                "value": [
                    {"field": field, "operator": ">", "value": since},
                    {"field": field, "operator": "=", "value": since},
                ],
            },
            {"operator": "AND", "value": [{"field": field, "operator": "<", "value": until}]},
        ],
    }


def test_unauthorized_without_valid_token(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=5))

    async def go():
        async with standin.http(token="wrong") as http:
            return await http.get("/me")

    response = run(go())
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "unauthorized"


def test_basic_endpoints(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=30, deleted=3))

    async def go():
        async with standin.http() as http:
            me = await http.get("/me")
            admins = await http.get("/admins")
            tags = await http.get("/tags")
            first = await http.get("/conversations", params={"per_page": 20})
            cursor = first.json()["pages"]["next"]["starting_after"]
            second = await http.get("/conversations", params={"per_page": 20, "starting_after": cursor})
            return me, admins, tags, first, second

    me, admins, tags, first, second = run(go())
    assert me.status_code == admins.status_code == tags.status_code == 200
    assert len(admins.json()["admins"]) == 5
    ids = [c["id"] for c in first.json()["conversations"] + second.json()["conversations"]]
    assert len(ids) == len(set(ids)) == 27
    assert "next" not in second.json()["pages"]


def test_search_inclusive_range_matches_brute_force(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=300, seed=3))
    convs = list(standin.workspace.conversations.values())
    times = sorted(c.updated_at for c in convs)
    since, until = times[50], times[250]

    async def go():
        got, cursor = [], None
        async with standin.http() as http:
            while True:
                body = {
                    "query": _range_query("updated_at", since, until),
                    "pagination": {"per_page": 150, **({"starting_after": cursor} if cursor else {})},
                    "sort": {"field": "updated_at", "order": "ascending"},
                }
                page = (await http.post("/conversations/search", json=body)).json()
                got += page["conversations"]
                cursor = (page["pages"].get("next") or {}).get("starting_after")
                if not cursor:
                    return got

    got = run(go())
    expected = {c.id for c in convs if since <= c.updated_at < until}
    assert [c["id"] for c in got if c["updated_at"] == since]  # the lower bound is inclusive
    assert {c["id"] for c in got} == expected
    stamps = [c["updated_at"] for c in got]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"field": "updated_at", "operator": "~", "value": 1}, "not valid for integer"),
        ({"field": "state", "operator": ">", "value": "open"}, "not valid for string"),
        ({"field": "open", "operator": "<", "value": True}, "not valid for boolean"),
        ({"field": "updated_at", "operator": "=", "value": "soon"}, "needs an integer"),
        ({"field": "nope", "operator": "=", "value": "x"}, "unsupported field"),
        (
            {
                "operator": "AND",
                "value": [
                    {
                        "operator": "OR",
                        "value": [{"operator": "AND", "value": [{"field": "state", "operator": "=", "value": "open"}]}],
                    }
                ],
            },
            "levels",
        ),
        (
            {"operator": "OR", "value": [{"field": "id", "operator": "=", "value": str(i)} for i in range(16)]},
            "per group",
        ),
    ],
)
def test_search_rejects_what_intercom_rejects(make_standin, query, message) -> None:
    standin = make_standin(WorkspaceSpec(conversations=5))

    async def go():
        async with standin.http() as http:
            return await http.post("/conversations/search", json={"query": query})

    response = run(go())
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def test_search_operators_and_page_size(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=60, seed=5))
    ws = standin.workspace
    some = sorted(ws.conversations)[:3]

    async def go():
        async with standin.http() as http:
            by_in = await http.post(
                "/conversations/search", json={"query": {"field": "id", "operator": "IN", "value": some}}
            )
            contains = await http.post(
                "/conversations/search",
                json={
                    "query": {"field": "source.body", "operator": "~", "value": "refund"},
                    "pagination": {"per_page": 150},
                },
            )
            too_big = await http.post(
                "/conversations/search",
                json={"query": {"field": "state", "operator": "=", "value": "open"}, "pagination": {"per_page": 151}},
            )
            return by_in, contains, too_big

    by_in, contains, too_big = run(go())
    assert sorted(c["id"] for c in by_in.json()["conversations"]) == some
    assert {c["id"] for c in contains.json()["conversations"]} == {
        c.id for c in ws.conversations.values() if "refund" in c.body.lower()
    }
    assert too_big.status_code == 400


def test_retrieve_caps_parts_and_contacts_404_410(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(
            conversations=200, huge_conversation_share=0.03, seed=1, merged_contact_share=0.3, missing_contact_share=0.2
        )
    )
    ws = standin.workspace
    huge = next(c for c in ws.conversations.values() if len(c.parts) > PARTS_CAP)
    merged = next(iter(ws.merged_into))
    missing = next(iter(ws.missing_contacts))

    async def go():
        async with standin.http() as http:
            conv = await http.get(f"/conversations/{huge.id}", params={"display_as": "plaintext"})
            unknown = await http.get("/conversations/1")
            gone = await http.get(f"/contacts/{merged}")
            absent = await http.get(f"/contacts/{missing}")
            return conv, unknown, gone, absent

    conv, unknown, gone, absent = run(go())
    parts = conv.json()["conversation_parts"]
    assert len(parts["conversation_parts"]) == PARTS_CAP and parts["total_count"] == len(huge.parts)
    assert parts["conversation_parts"][-1]["id"] == huge.parts[-1]["id"]  # the most recent ones
    assert unknown.status_code == 404
    assert gone.status_code == 410 and f"/contacts/{ws.merged_into[merged]}>" in gone.headers["link"]
    assert absent.status_code == 404


def test_deleted_pages(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=100, deleted=70))

    async def go():
        ids, page = [], 1
        async with standin.http() as http:
            while True:
                body = (
                    await http.get("/conversations/deleted", params={"page": page, "per_page": 60, "order": "desc"})
                ).json()
                ids += [(c["id"], c["deleted_at"]) for c in body["conversations"]]
                if not body["pages"]["next"]:
                    return ids
                page += 1

    ids = run(go())
    assert {i for i, _ in ids} == set(standin.workspace.deleted)
    assert [at for _, at in ids] == sorted((at for _, at in ids), reverse=True)


def test_rate_limit_windows_and_headers(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=3), window_seconds=10, limit_per_window=5)

    async def go():
        async with standin.http() as http:
            return [await http.get("/me") for _ in range(6)]

    responses = run(go())
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [int(r.headers["x-ratelimit-remaining"]) for r in responses] == [4, 3, 2, 1, 0, 0]
    reset = int(responses[-1].headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 10 and reset % 10 == 0
    assert responses[-1].json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert standin.stats.limit_429 == 1 and standin.stats.injected_429 == 0


def test_fault_injection_and_mutation(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=50),
        error_429_share=0.2,
        error_500_share=0.2,
        slow_share=0.1,
        slow_seconds=0.01,
        mutations_per_search_page=2,
        mutation_budget=3,
    )
    before = {c.id: c.updated_at for c in standin.workspace.conversations.values()}

    async def go():
        async with standin.http() as http:
            codes = [(await http.get("/me")).status_code for _ in range(100)]
            for _ in range(3):
                await http.post(
                    "/conversations/search", json={"query": {"field": "state", "operator": "!=", "value": "x"}}
                )
            return codes

    codes = run(go())
    stats = standin.stats
    assert stats.injected_429 > 5 and stats.injected_500 > 5 and stats.slow > 2
    assert codes.count(429) >= stats.injected_429 - 3  # searches may take some of the faults
    assert stats.limit_429 == 0
    changed = [cid for cid, t in before.items() if standin.workspace.conversations[cid].updated_at != t]
    assert len(changed) == stats.mutations <= 3

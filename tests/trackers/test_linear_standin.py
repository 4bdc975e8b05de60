"""The Linear stand-in, driven over loopback with plain httpx; every operation validated by graphql-core."""

from __future__ import annotations

import time

import httpx
from threadline_testing.serve import serve
from threadline_testing.trackers.common import Faults
from threadline_testing.trackers.linear import COMPLEXITY_PER_HOUR, REQUESTS_PER_HOUR, create_app
from threadline_testing.trackers.specs import GraphQLCheckingMiddleware, LinearValidator, graphql_errors

MARKER = "threadline:story=5f2c9a"

TEAM = """query Team($key: String!) {
  teams(filter: {key: {eq: $key}}) { nodes { id key name states(first: 10) { nodes { id name type } } } }
}"""
CREATE = """mutation Create($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier url title state { type name } } }
}"""
UPDATE = """mutation Update($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) { success issue { id description state { type name } completedAt } }
}"""
GET = """query Get($id: String!) {
  issue(id: $id) { id identifier title description state { type name }
    comments(first: 20) { nodes { body } } attachments(first: 20) { nodes { id url title } } }
}"""
FIND = """query Find($marker: String!) {
  issues(filter: {description: {contains: $marker}}, first: 5) { nodes { id identifier } }
}"""
COMMENT = (
    """mutation Comment($input: CommentCreateInput!) { commentCreate(input: $input) { success comment { id body } } }"""
)
ATTACH = """mutation Attach($input: AttachmentCreateInput!) {
  attachmentCreate(input: $input) { success attachment { id url title } }
}"""


def gql(client, query: str, **variables):
    return client.post("/graphql", json={"query": query, "variables": variables})


def _team(client) -> dict:
    return gql(client, TEAM, key="ENG").json()["data"]["teams"]["nodes"][0]


def _create(client, team: dict, title: str = "Checkout fails") -> dict:
    answer = gql(
        client, CREATE, input={"teamId": team["id"], "title": title, "description": f"Problem\n\n<!-- {MARKER} -->"}
    )
    return answer.json()["data"]["issueCreate"]["issue"]


def test_create_get_update_comment_attach_complete(linear_server) -> None:
    linear = linear_server()
    with linear.client() as client:
        assert (
            gql(client, "query Me { viewer { id name email } }").json()["data"]["viewer"]["email"] == "bot@example.com"
        )
        team = _team(client)
        assert {s["type"] for s in team["states"]["nodes"]} >= {"unstarted", "started", "completed", "canceled"}
        issue = _create(client, team)
        assert issue["identifier"] == "ENG-1" and issue["state"]["type"] == "unstarted"

        found = gql(client, FIND, marker=MARKER).json()["data"]["issues"]["nodes"]
        assert [i["id"] for i in found] == [issue["id"]]

        assert gql(client, COMMENT, input={"issueId": issue["id"], "body": "3 new conversations"}).json()["data"][
            "commentCreate"
        ]["success"]
        link = {"issueId": issue["id"], "title": "Story", "url": "https://threadline.example/s/1"}
        first = gql(client, ATTACH, input=link).json()["data"]["attachmentCreate"]["attachment"]
        again = gql(client, ATTACH, input={**link, "title": "Story (renamed)"}).json()["data"]["attachmentCreate"]
        assert again["attachment"]["id"] == first["id"]  # idempotent per (issue, url)

        done = next(s for s in team["states"]["nodes"] if s["type"] == "completed")
        updated = gql(client, UPDATE, id=issue["id"], input={"stateId": done["id"], "description": "new"}).json()
        assert updated["data"]["issueUpdate"]["issue"]["state"] == {"type": "completed", "name": "Done"}

        got = gql(client, GET, id="ENG-1").json()["data"]["issue"]
        assert got["description"] == "new" and got["state"]["type"] == "completed"
        assert [c["body"] for c in got["comments"]["nodes"]] == ["3 new conversations"]
        assert [a["title"] for a in got["attachments"]["nodes"]] == ["Story (renamed)"]

        missing = gql(client, GET, id="ENG-99").json()
        assert missing["data"] is None and missing["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


def test_person_hooks(linear_server) -> None:
    linear = linear_server()
    with linear.client() as client:
        issue = _create(client, _team(client))
        linear.world.cancel_as_person(issue["identifier"])
        linear.world.edit_description_as_person(issue["identifier"], lambda text: text + "\n\nA person's note")
        got = gql(client, GET, id=issue["id"]).json()["data"]["issue"]
    assert got["state"]["type"] == "canceled" and got["description"].endswith("A person's note")


def test_invalid_operation_is_refused_like_linear() -> None:
    """An unknown field or argument: HTTP 400, GRAPHQL_VALIDATION_FAILED, nothing executed, violation recorded.

    It has its own validator (the session's must stay at 0 violations) and its own server.
    """
    validator = LinearValidator()
    app = create_app()
    with serve(GraphQLCheckingMiddleware(app, validator)) as url, httpx.Client(base_url=url) as client:
        refused = client.post(
            "/graphql",
            headers={"Authorization": "lin_api_standin"},
            json={"query": "mutation { issueCreate(input: {title: 1}) { success bogus } }"},
        )
    assert refused.status_code == 400
    assert {e["extensions"]["code"] for e in refused.json()["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    assert not app.state.world.issues
    assert validator.exchanges == 1 and {v.side for v in validator.violations} == {"request"}


def test_graphql_errors_helper_checks_against_the_schema() -> None:
    assert graphql_errors(CREATE) == []
    assert graphql_errors("{ issue(id: 1) { id } }")  # id is String!
    assert graphql_errors("{ viewer { ") and graphql_errors("{ nope }")


def test_refused_api_key(linear_server) -> None:
    linear = linear_server()
    with linear.client(auth={"Authorization": "lin_api_wrong"}) as client:
        refused = gql(client, "query Me { viewer { id } }")
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["extensions"]["code"] == "AUTHENTICATION_ERROR"


def test_rate_limit_headers_and_ratelimited(linear_server) -> None:
    linear = linear_server(requests_per_hour=3)
    with linear.client() as client:
        answers = [gql(client, "query Me { viewer { id } }") for _ in range(4)]
    ok = answers[0]
    assert ok.headers["x-ratelimit-requests-limit"] == "3" and ok.headers["x-ratelimit-requests-remaining"] == "2"
    assert int(ok.headers["x-ratelimit-requests-reset"]) > time.time() * 1000  # epoch milliseconds
    assert ok.headers["x-complexity"] == "2"  # viewer object (1) + id (0.1), rounded up
    assert ok.headers["x-ratelimit-complexity-limit"] == str(COMPLEXITY_PER_HOUR)
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
    assert REQUESTS_PER_HOUR == 5_000


def test_complexity_budget_and_scaled_refill(linear_server) -> None:
    """A 50x50 nested query costs thousands of points; the bucket refills at limit/period (scaled)."""
    linear = linear_server(complexity_per_hour=6_000, time_scale=0.001)  # the hour is 3.6 s
    big = "query Big { teams { nodes { id states { nodes { id name } } } } }"
    cost = linear.app.state.complexity(big)
    # Linear's rule: objects 1, scalars 0.1, connections multiply by `first` (default 50); each
    # connection is an object with a `nodes` object list: 50 * (1 + (1 + 0.1 + 50 * (1 + (1 + 0.2))))
    assert cost == round(50 * (1 + (1 + 0.1 + 50 * (1 + (1 + 0.2)))))
    with linear.client() as client:
        first = gql(client, big)
        second = gql(client, big)
        assert first.status_code == 200 and first.headers["x-complexity"] == str(cost)
        assert second.status_code == 429 and second.json()["errors"][0]["extensions"]["code"] == "RATELIMITED"
        time.sleep(3.6 * cost / 6_000 + 0.2)
        assert gql(client, big).status_code == 200
    assert linear.stats.complexity_limited == 1


def test_query_over_the_single_query_ceiling(linear_server) -> None:
    linear = linear_server()
    with linear.client() as client:
        huge = gql(client, "query Huge { teams(first: 250) { nodes { states(first: 250) { nodes { id } } } } }")
    assert huge.status_code == 400 and huge.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_injected_faults(linear_server) -> None:
    linear = linear_server(faults=Faults(error_5xx_share=0.3, error_429_share=0.3, seed=7))
    with linear.client() as client:
        statuses = {gql(client, "query Me { viewer { id } }").status_code for _ in range(40)}
    assert {200, 429, 500} <= statuses


def test_validator_flags_invalid_operations_and_responses() -> None:
    validator = LinearValidator()
    assert validator.check(b'{"query": "{ viewer { id } }"}', 200, b'{"data": {"viewer": {"id": "1"}}}') == []
    assert [v.side for v in validator.check(b'{"query": "{ viewer { nope } }"}', 400, b'{"errors": [{}]}')] == [
        "request",
        "response",
    ]
    assert [v.side for v in validator.check(b'{"query": "{ viewer { id } }"}', 200, b'{"result": 1}')] == ["response"]
    assert validator.exchanges == 3 and len(validator.violations) == 3

"""The Jira stand-in, driven over loopback with plain httpx; every exchange and ADF body validated."""

from __future__ import annotations

import base64
import json

from starlette.testclient import TestClient
from threadline_testing.contract import CapturedRequest, CapturedResponse, ContractCheckingMiddleware
from threadline_testing.trackers.common import Faults
from threadline_testing.trackers.jira import create_app
from threadline_testing.trackers.specs import adf_errors, jira_validator

API = "/rest/api/3"
MARKER = "threadline-story-5f2c9a"


def jira_auth(email: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()}


def adf(*paragraphs: str) -> dict:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
    }


def _create(client, summary: str = "Checkout fails", description: dict | None = None, **fields):
    body = {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Task"},
            "summary": summary,
            "description": description or adf("Problem", f"Marker {MARKER}"),
            **fields,
        }
    }
    return client.post(f"{API}/issue", json=body)


def test_create_get_edit_comment_link_transition(jira_server) -> None:
    jira = jira_server()
    with jira.client() as client:
        assert client.get(f"{API}/myself").json()["emailAddress"] == "bot@example.com"
        assert client.get(f"{API}/project/OPS").json()["key"] == "OPS"
        types = client.get(f"{API}/issue/createmeta/OPS/issuetypes").json()["issueTypes"]
        assert {t["name"] for t in types} == {"Task", "Story", "Bug"}

        created = _create(client, labels=["threadline"])
        assert created.status_code == 201 and created.json()["key"] == "OPS-1"
        issue = client.get(f"{API}/issue/OPS-1").json()
        assert issue["fields"]["status"]["statusCategory"]["key"] == "new"
        assert issue["fields"]["description"]["type"] == "doc" and issue["fields"]["labels"] == ["threadline"]

        edited = client.put(f"{API}/issue/OPS-1", json={"fields": {"summary": "Checkout fails (12)"}})
        assert edited.status_code == 204 and not edited.content
        assert client.get(f"{API}/issue/OPS-1", params={"fields": "summary"}).json()["fields"] == {
            "summary": "Checkout fails (12)"
        }

        comment = client.post(f"{API}/issue/OPS-1/comment", json={"body": adf("3 new conversations")})
        assert comment.status_code == 201
        updated = client.put(f"{API}/issue/OPS-1/comment/{comment.json()['id']}", json={"body": adf("4 new")})
        assert updated.json()["body"] == adf("4 new")
        assert client.get(f"{API}/issue/OPS-1/comment").json()["total"] == 1

        link = {"globalId": "threadline:story:1", "object": {"url": "https://threadline.example/s/1", "title": "Story"}}
        assert client.post(f"{API}/issue/OPS-1/remotelink", json=link).status_code == 201
        link["object"]["title"] = "Story (renamed)"
        assert client.post(f"{API}/issue/OPS-1/remotelink", json=link).status_code == 200  # same globalId: update
        links = client.get(f"{API}/issue/OPS-1/remotelink").json()
        assert [lk["object"]["title"] for lk in links] == ["Story (renamed)"]
        one = client.get(f"{API}/issue/OPS-1/remotelink", params={"globalId": "threadline:story:1"}).json()
        assert one["globalId"] == "threadline:story:1"

        transitions = client.get(f"{API}/issue/OPS-1/transitions").json()["transitions"]
        assert {t["name"]: t["to"]["statusCategory"]["key"] for t in transitions} == {
            "In Progress": "indeterminate",
            "Done": "done",
        }
        for target in ("In Progress", "Done"):
            tid = next(
                t["id"]
                for t in client.get(f"{API}/issue/OPS-1/transitions").json()["transitions"]
                if t["name"] == target
            )
            assert client.post(f"{API}/issue/OPS-1/transitions", json={"transition": {"id": tid}}).status_code == 204
        done = client.get(f"{API}/issue/OPS-1").json()["fields"]
        assert done["status"]["statusCategory"]["key"] == "done" and done["resolution"]["name"] == "Done"
        assert client.get(f"{API}/issue/OPS-9").status_code == 404


def test_person_hooks(jira_server) -> None:
    jira = jira_server()
    with jira.client() as client:
        _create(client)
        jira.world.transition_as_person("OPS-1", "Done")
        jira.world.edit_description_as_person(
            "OPS-1", lambda doc: {**doc, "content": doc["content"] + adf("x")["content"]}
        )
        fields = client.get(f"{API}/issue/OPS-1").json()["fields"]
    assert fields["status"]["name"] == "Done" and len(fields["description"]["content"]) == 3


def test_search_jql_by_marker_with_next_page_token(jira_server) -> None:
    jira = jira_server()
    with jira.client() as client:
        for n in range(5):
            _create(client, summary=f"issue {n}", description=adf(f"shared words, number {n}"))
        _create(client, summary="the one")
        found = client.get(
            f"{API}/search/jql", params={"jql": f'project = OPS AND text ~ "{MARKER}"', "fields": "summary,status"}
        ).json()
        assert [i["fields"]["summary"] for i in found["issues"]] == ["the one"] and found["isLast"] is True
        by_description = client.post(
            f"{API}/search/jql", json={"jql": f'project = OPS AND description ~ "{MARKER}"'}
        ).json()
        assert by_description["issues"] == [{"id": found["issues"][0]["id"]}]  # default fields: id only

        keys: list[str] = []
        body = {
            "jql": 'project = OPS AND text ~ "shared words" ORDER BY created ASC',
            "maxResults": 2,
            "fields": ["key"],
        }
        while True:
            page = client.post(f"{API}/search/jql", json=body).json()
            keys += [i["key"] for i in page["issues"]]
            if page["isLast"]:
                assert "nextPageToken" not in page
                break
            body["nextPageToken"] = page["nextPageToken"]
        assert keys == [f"OPS-{n}" for n in range(1, 6)]

        jira.world.transition_as_person("OPS-6", "Done")
        done = client.get(f"{API}/search/jql", params={"jql": "project = OPS AND statusCategory = Done"}).json()
        assert len(done["issues"]) == 1
        bad = client.get(f"{API}/search/jql", params={"jql": "project = NOPE"})
        assert bad.status_code == 400 and bad.json()["errorMessages"]


def test_missing_project_and_bad_field_give_jiras_400(jira_server) -> None:
    jira = jira_server()
    with jira.client() as client:
        no_project = client.post(
            f"{API}/issue", json={"fields": {"project": {"key": "NOPE"}, "summary": "s", "issuetype": {"name": "Task"}}}
        )
        bad_field = _create(client, customfield_10099="x")
    assert no_project.status_code == 400
    assert no_project.json() == {"errorMessages": [], "errors": {"project": "Specify a valid project ID or key"}}
    assert bad_field.status_code == 400 and "customfield_10099" in bad_field.json()["errors"]
    assert not jira.world.issues


def test_refused_credentials_get_401(jira_server) -> None:
    jira = jira_server()
    with jira.client(auth=jira_auth("bot@example.com", "wrong")) as client:
        refused = client.get(f"{API}/myself")
    assert refused.status_code == 401 and refused.json()["errorMessages"]
    with jira.client(auth=jira_auth("nobody@example.com", "jira-standin-token")) as client:
        assert client.get(f"{API}/myself").status_code == 401


def test_rate_limit_429_with_retry_after(jira_server) -> None:
    jira = jira_server(requests_per_window=2, window_seconds=60)
    with jira.client() as client:
        answers = [client.get(f"{API}/myself") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    limited = answers[2]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-ratelimit-remaining"] == "0" and limited.headers["ratelimit-reason"]


def test_injected_faults(jira_server) -> None:
    jira = jira_server(faults=Faults(error_5xx_share=0.3, error_429_share=0.3, seed=5))
    with jira.client() as client:
        answers = [client.get(f"{API}/myself") for _ in range(40)]
    assert {200, 429, 503} <= {a.status_code for a in answers}
    assert all(a.headers["retry-after"] == "1" for a in answers if a.status_code == 429)


def test_invalid_adf_is_refused_and_reported() -> None:
    """The stand-in refuses a non-ADF description like Jira, and the validator flags the request."""
    validator, adf_check = jira_validator()
    app = create_app()
    headers = jira_auth("bot@example.com", "jira-standin-token")
    with TestClient(ContractCheckingMiddleware(app, validator), base_url="https://your-domain.atlassian.net") as tc:
        plain = tc.post(
            f"{API}/issue",
            headers=headers,
            json={
                "fields": {
                    "project": {"key": "OPS"},
                    "issuetype": {"name": "Task"},
                    "summary": "s",
                    "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "text": "x"}]},
                }
            },
        )
        markdown_comment = tc.post(f"{API}/issue/OPS-1/comment", headers=headers, json={"body": "**markdown**"})
    assert plain.status_code == 400 and "description" in plain.json()["errors"]
    assert markdown_comment.status_code == 400
    assert adf_check.violations == 2 and [v.side for v in validator.violations] == ["request", "request"]
    assert not app.state.world.issues


def test_adf_schema_accepts_rich_documents() -> None:
    rich = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Problem"}]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    {"type": "text", "text": "quote", "marks": [{"type": "em"}]},
                                    {
                                        "type": "text",
                                        "text": " source",
                                        "marks": [{"type": "link", "attrs": {"href": "https://x.example/c/1"}}],
                                    },
                                ],
                            }
                        ],
                    }
                ],
            },
            {"type": "rule"},
        ],
    }
    assert adf_errors(rich) == []
    assert adf_errors({"type": "doc", "content": []})  # version is required


def test_validator_catches_a_wrong_response() -> None:
    validator, _ = jira_validator()
    request = CapturedRequest(
        "GET", f"{API}/issue/OPS-1/comment", "", {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}, b""
    )
    request.host_url = "https://your-domain.atlassian.net"
    body = json.dumps({"comments": [{"id": 1}], "total": "one"}).encode()
    found = validator.check(request, CapturedResponse(200, {"Content-Type": "application/json"}, body))
    assert [v.side for v in found] == ["response"]

"""Stand-in of the Jira Cloud platform REST API v3, issues subset (jira-cloud-platform.issues.json).

Routes (those listed in ../shared/specs/jira/NOTES.md): `POST /rest/api/3/issue`,
`GET|PUT /rest/api/3/issue/{key}`, `GET|POST /rest/api/3/issue/{key}/comment`,
`PUT /rest/api/3/issue/{key}/comment/{id}`, `GET|POST /rest/api/3/issue/{key}/remotelink`,
`GET|POST /rest/api/3/issue/{key}/transitions`, `GET|POST /rest/api/3/search/jql`,
`GET /rest/api/3/myself`, `GET /rest/api/3/project/{key}`,
`GET /rest/api/3/issue/createmeta/{key}/issuetypes`. Any Host works (a site is just a base URL).

Behaviour and the Atlassian documentation it follows:

- Authentication ("Basic auth for REST APIs"): `Authorization: Basic base64(email:api_token)`;
  anything else is 401 with an `ErrorCollection` body.
- Rich text (REST v3 "Atlassian Document Format"): `description` and comment `body` are ADF
  documents; an invalid one is refused with 400 `{"errorMessages": [], "errors": {"description":
  ...}}` (the document is validated with the same JSON Schema the tests use, adf-schema-v1-full.json).
- Validation errors (REST v3 "Status codes" / ErrorCollection): 400 with `errorMessages` and
  `errors` keyed by field: "project": "Specify a valid project ID or key", "issuetype": "Specify
  an issue type", "summary": "You must specify a summary of the issue.", and for an unknown field
  "Field 'X' cannot be set. It is not on the appropriate screen, or unknown."
- Search ("Search for issues using JQL enhanced search", `/rest/api/3/search/jql`; the old
  `/rest/api/3/search` is deprecated): `jql`, `maxResults` (default 50), `fields` (default `id`
  only; `*all`, `*navigable` or a list), `nextPageToken` pagination (absent on the last page,
  `isLast` true). JQL subset: `project = KEY`, `key = K-1`, `key in (...)`, `status = "Done"`,
  `statusCategory = Done`, `summary|description|text ~ "words"`, `labels = x`, AND / OR /
  parentheses, `ORDER BY field [ASC|DESC]`. `~` is Jira's text match: case-insensitive, on
  words (punctuation separates words), so a marker like `threadline-story-abc12` is found in a
  description that carries it; `text` searches summary, description and comments.
- Workflow (Jira's default software workflow): To Do (category `new`) -> In Progress
  (`indeterminate`) -> Done (`done`), every status reachable from every other (transition ids
  11, 21, 31); Done sets `resolution` "Done" and `resolutiondate`.
- Remote links ("Create or update remote issue link"): a POST with a `globalId` that already
  exists on the issue updates that link (200) instead of creating one (201).
- Rate limiting ("Rate limiting" in the Jira Cloud developer guide): 429 with `Retry-After`
  (seconds) and `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (ISO 8601),
  `RateLimit-Reason`. Atlassian publishes no fixed number for its cost-based budget, so the
  budget here is `requests_per_window` per `window_seconds` (scaled by `time_scale`).

Fault injection (`Faults`): a share of 5xx, of injected 429s, delays. Hooks for tests:
`JiraWorld.transition_as_person(key, "Done")` and `JiraWorld.edit_description_as_person(...)`.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from threadline_testing.trackers.common import Faults, FixedWindow, TrafficStats
from threadline_testing.trackers.specs import adf_errors

API = "/rest/api/3"
DEFAULT_MAX_RESULTS = 50  # search/jql page size when the client does not ask (Atlassian's default)
MAX_MAX_RESULTS = 5_000  # search/jql's documented ceiling
DEFAULT_REQUESTS_PER_WINDOW = 100  # no published number (cost-based); generous for tests
DEFAULT_WINDOW_SECONDS = 1.0
NAVIGABLE_FIELDS = (
    "summary",
    "description",
    "issuetype",
    "project",
    "labels",
    "status",
    "created",
    "updated",
    "resolution",
    "resolutiondate",
)
SETTABLE_FIELDS = frozenset({"summary", "description", "issuetype", "project", "labels", "environment"})


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str
    category_name: str
    color: str


STATUSES = (
    Status("10000", "To Do", 2, "new", "To Do", "blue-gray"),
    Status("10001", "In Progress", 4, "indeterminate", "In Progress", "yellow"),
    Status("10002", "Done", 3, "done", "Done", "green"),
)
TRANSITION_IDS = {"To Do": "11", "In Progress": "21", "Done": "31"}
ISSUE_TYPES = (("10001", "Task", False), ("10002", "Story", False), ("10003", "Bug", False))


def jira_time(ts: float) -> str:
    """Jira's timestamp format: 2024-01-31T12:00:00.000+0000."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}+0000"


def adf_text(document: Any) -> str:
    """The plain text of an ADF document (text nodes joined by spaces)."""
    out: list[str] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            if isinstance(node.get("attrs"), dict) and isinstance(node["attrs"].get("url"), str):
                out.append(node["attrs"]["url"])
            stack.extend(reversed(node.get("content") or []))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return " ".join(out)


def words(text: str) -> list[str]:
    """Jira-style tokens: lower-case runs of letters and digits."""
    return re.findall(r"[0-9a-z]+", text.lower())


@dataclass
class JiraComment:
    id: str
    body: Any
    author: str
    created: float
    updated: float


@dataclass
class RemoteLink:
    id: int
    global_id: str | None
    object: dict[str, Any]
    relationship: str | None
    application: dict[str, Any] | None


@dataclass
class JiraIssue:
    id: str
    key: str
    project: str
    summary: str
    description: Any
    issuetype: str
    labels: list[str]
    created: float
    updated: float
    status: Status = STATUSES[0]
    resolutiondate: float | None = None
    comments: list[JiraComment] = field(default_factory=list)
    links: list[RemoteLink] = field(default_factory=list)


@dataclass
class Project:
    id: str
    key: str
    name: str


class JiraWorld:
    """A Jira site's data: projects, issues; tests act on it as people would."""

    def __init__(self, projects: tuple[tuple[str, str], ...] = (("OPS", "Operations"),), clock=time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.projects = {key: Project(str(10_000 + i), key, name) for i, (key, name) in enumerate(projects)}
        self.issues: dict[str, JiraIssue] = {}  # by key
        self._ids = itertools.count(10_001)

    def next_id(self) -> int:
        return next(self._ids)

    def find(self, id_or_key: str) -> JiraIssue | None:
        with self.lock:
            found = self.issues.get(id_or_key.upper())
            if found is None:
                found = next((i for i in self.issues.values() if i.id == id_or_key), None)
            return found

    def create(self, project: Project, summary: str, description: Any, issuetype: str, labels: list[str]) -> JiraIssue:
        with self.lock:
            number = 1 + sum(1 for i in self.issues.values() if i.project == project.key)
            now = self.clock()
            issue = JiraIssue(
                id=str(self.next_id()),
                key=f"{project.key}-{number}",
                project=project.key,
                summary=summary,
                description=description,
                issuetype=issuetype,
                labels=labels,
                created=now,
                updated=now,
            )
            self.issues[issue.key] = issue
            return issue

    def transition(self, issue: JiraIssue, status_name: str) -> None:
        with self.lock:
            status = next(s for s in STATUSES if s.name == status_name)
            issue.status = status
            issue.resolutiondate = self.clock() if status.category_key == "done" else None
            issue.updated = self.clock()

    def transition_as_person(self, key: str, status_name: str = "Done") -> None:
        """Move an issue on the board as a person would (test hook)."""
        issue = self.find(key)
        assert issue is not None, key
        self.transition(issue, status_name)

    def edit_description_as_person(self, key: str, edit: Callable[[Any], Any]) -> None:
        """Rewrite an issue's ADF description as a person would (test hook): description = edit(description)."""
        with self.lock:
            issue = self.find(key)
            assert issue is not None, key
            issue.description = edit(issue.description)
            issue.updated = self.clock()


@dataclass
class JiraConfig:
    """Behaviour of one Jira stand-in; `accounts` maps e-mail to (API token, accountId, display name)."""

    world: JiraWorld = field(default_factory=JiraWorld)
    accounts: dict[str, tuple[str, str, str]] = field(
        default_factory=lambda: {"bot@example.com": ("jira-standin-token", "5b10ac8d82e05b22cc7d4ef5", "Threadline")}
    )
    requests_per_window: int = DEFAULT_REQUESTS_PER_WINDOW
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    time_scale: float = 1.0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    # test hook: called with the new issue's key after it is created, before the answer is sent
    after_create: Callable[[str], None] | None = None


class JqlError(ValueError):
    """A JQL query this stand-in (or Jira) cannot parse."""


JQL_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|!=|!~|~|=|\(|\)|,|[^\s=!~(),"\']+)')


def _tokens(jql: str) -> list[str]:
    out, pos = [], 0
    while pos < len(jql):
        m = JQL_TOKEN.match(jql, pos)
        if m is None:
            if jql[pos:].strip():
                raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
            break
        out.append(m.group(1))
        pos = m.end()
    return [t for t in out if t]


def _unquote(token: str) -> str:
    if token[:1] in "\"'" and token[-1:] == token[:1]:
        return token[1:-1].replace('\\"', '"')
    return token


def compile_jql(jql: str, world: JiraWorld) -> tuple[Callable[[JiraIssue], bool], tuple[str, bool]]:
    """Compile the JQL subset of the module docstring: (predicate, (order field, descending))."""
    tokens = _tokens(jql)
    order = ("created", True)
    upper = [t.upper() for t in tokens]
    if "ORDER" in upper:
        at = upper.index("ORDER")
        tail = tokens[at + 2 :] if at + 1 < len(upper) and upper[at + 1] == "BY" else []
        if not tail:
            raise JqlError("Error in the JQL Query: expecting 'BY' after 'ORDER'.")
        order = (tail[0].lower(), len(tail) < 2 or tail[1].upper() != "ASC")
        tokens = tokens[:at]
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise JqlError("Error in the JQL Query: the query ended unexpectedly.")
        pos += 1
        return tokens[pos - 1]

    def field_text(issue: JiraIssue, name: str) -> str:
        if name == "summary":
            return issue.summary
        if name == "description":
            return adf_text(issue.description)
        if name == "comment":
            return " ".join(adf_text(c.body) for c in issue.comments)
        return " ".join([issue.summary, adf_text(issue.description), *(adf_text(c.body) for c in issue.comments)])

    def clause() -> Callable[[JiraIssue], bool]:
        if peek() == "(":
            take()
            inner = expression()
            if take() != ")":
                raise JqlError("Error in the JQL Query: expecting ')'.")
            return inner
        name = take().lower()
        op = take().upper()
        if op in ("IN", "NOT"):
            if op == "NOT" and take().upper() != "IN":
                raise JqlError("Error in the JQL Query: expecting 'IN' after 'NOT'.")
            if take() != "(":
                raise JqlError("Error in the JQL Query: expecting '(' after 'IN'.")
            values = []
            while peek() != ")":
                token = take()
                if token != ",":
                    values.append(_unquote(token).lower())
            take()
            test = value_test(name, values)
            return (lambda i: not test(i)) if op == "NOT" else test
        value = _unquote(take())
        if op in ("~", "!~"):
            if name not in ("summary", "description", "comment", "text"):
                raise JqlError(f"The operator '~' is not supported by the '{name}' field.")
            wanted = " ".join(words(value))
            if not wanted:
                raise JqlError("The value for '~' must contain a word.")

            def contains(issue: JiraIssue) -> bool:
                return f" {wanted} " in f" {' '.join(words(field_text(issue, name)))} "

            return contains if op == "~" else (lambda i: not contains(i))
        if op in ("=", "!="):
            test = value_test(name, [value.lower()])
            return test if op == "=" else (lambda i: not test(i))
        raise JqlError(f"Error in the JQL Query: the operator '{op}' is not supported here.")

    def value_test(name: str, values: list[str]) -> Callable[[JiraIssue], bool]:
        getters: dict[str, Callable[[JiraIssue], list[str]]] = {
            "project": lambda i: [i.project.lower(), world.projects[i.project].id],
            "key": lambda i: [i.key.lower()],
            "issuekey": lambda i: [i.key.lower()],
            "id": lambda i: [i.id],
            "status": lambda i: [i.status.name.lower(), i.status.id],
            "statuscategory": lambda i: [i.status.category_name.lower(), i.status.category_key],
            "labels": lambda i: [lab.lower() for lab in i.labels],
            "issuetype": lambda i: [i.issuetype.lower()],
        }
        getter = getters.get(name)
        if getter is None:
            raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")
        if name == "project" and not any(v.upper() in world.projects or v in _project_ids(world) for v in values):
            raise JqlError(f"The value '{values[0]}' does not exist for the field 'project'.")
        return lambda issue: any(v in getter(issue) for v in values)

    def conjunction() -> Callable[[JiraIssue], bool]:
        parts = [clause()]
        while (peek() or "").upper() == "AND":
            take()
            parts.append(clause())
        return lambda i: all(p(i) for p in parts)

    def expression() -> Callable[[JiraIssue], bool]:
        parts = [conjunction()]
        while (peek() or "").upper() == "OR":
            take()
            parts.append(conjunction())
        return lambda i: any(p(i) for p in parts)

    if not tokens:
        raise JqlError("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
    predicate = expression()
    if pos != len(tokens):
        raise JqlError(f"Error in the JQL Query: unexpected '{tokens[pos]}'.")
    return predicate, order


def _project_ids(world: JiraWorld) -> set[str]:
    return {p.id for p in world.projects.values()}


def _errors(status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None, headers=None):
    return JSONResponse({"errorMessages": messages or [], "errors": errors or {}}, status_code=status, headers=headers)


def create_app(config: JiraConfig | None = None) -> Starlette:
    """The ASGI app; `app.state.world`, `.config` and `.stats` expose its state."""
    config = config or JiraConfig()
    world = config.world
    stats = TrafficStats()
    window = FixedWindow(config.requests_per_window, config.window_seconds * config.time_scale, config.clock)
    page_tokens: dict[str, tuple[str, int]] = {}  # nextPageToken -> (jql, offset)
    tokens_lock = threading.Lock()

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def account(request: Request) -> tuple[str, str, str] | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            email, _, token = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None
        found = config.accounts.get(email)
        if found is None or found[0] != token:
            return None
        return email, found[1], found[2]

    async def gate(request: Request, route: str) -> tuple[Response | None, tuple[str, str, str] | None]:
        stats.requests += 1
        stats.by_route[route] += 1
        who = account(request)
        if who is None:
            stats.unauthorized += 1
            return _errors(401, ["You are not authenticated. Authentication required to perform this operation."]), None
        admitted, used, reset = window.take()
        if not admitted:
            stats.primary_limited += 1
            retry = max(1, int(reset - config.clock() + 0.999))
            return _limited(retry, reset), who
        fault = await config.faults.roll()
        if fault == "5xx":
            stats.injected_5xx += 1
            return _errors(503, ["Service unavailable. Please try again later."]), who
        if fault == "429":
            stats.injected_429 += 1
            return _limited(config.faults.retry_after_seconds, config.clock() + config.faults.retry_after_seconds), who
        return None, who

    def _limited(retry: int, reset: float) -> Response:
        headers = {
            "Retry-After": str(retry),
            "X-RateLimit-Limit": str(config.requests_per_window),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%MZ"),
            "RateLimit-Reason": "jira-quota-based",
        }
        return _errors(429, ["Rate limit exceeded."], headers=headers)

    def finish(response: Response) -> Response:
        stats.by_status[response.status_code] += 1
        return response

    def reply(body: Any, status: int = 200) -> Response:
        return finish(JSONResponse(body, status_code=status))

    def user_json(request: Request, account_id: str, name: str) -> dict[str, Any]:
        return {
            "self": f"{base(request)}{API}/user?accountId={account_id}",
            "accountId": account_id,
            "displayName": name,
            "active": True,
            "accountType": "atlassian",
            "timeZone": "Etc/UTC",
        }

    def author_of(request: Request, email: str) -> dict[str, Any]:
        _, account_id, name = config.accounts.get(email, ("", "unknown", email))
        return user_json(request, account_id, name)

    def status_json(request: Request, status: Status) -> dict[str, Any]:
        return {
            "self": f"{base(request)}{API}/status/{status.id}",
            "id": status.id,
            "name": status.name,
            "description": "",
            "iconUrl": f"{base(request)}/images/icons/status.png",
            "statusCategory": {
                "self": f"{base(request)}{API}/statuscategory/{status.category_id}",
                "id": status.category_id,
                "key": status.category_key,
                "name": status.category_name,
                "colorName": status.color,
            },
        }

    def issuetype_json(request: Request, name: str) -> dict[str, Any]:
        type_id, type_name, subtask = next(t for t in ISSUE_TYPES if t[1] == name)
        return {
            "self": f"{base(request)}{API}/issuetype/{type_id}",
            "id": type_id,
            "name": type_name,
            "description": "",
            "subtask": subtask,
            "hierarchyLevel": 0,
            "iconUrl": f"{base(request)}/images/icons/{type_name.lower()}.svg",
        }

    def project_json(request: Request, project: Project, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "self": f"{base(request)}{API}/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
            "simplified": False,
        }
        if full:
            out["issueTypes"] = [issuetype_json(request, name) for _, name, _ in ISSUE_TYPES]
            out["style"] = "classic"
            out["isPrivate"] = False
        return out

    def comment_json(request: Request, issue: JiraIssue, comment: JiraComment) -> dict[str, Any]:
        author = author_of(request, comment.author)
        return {
            "self": f"{base(request)}{API}/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "updateAuthor": author,
            "body": comment.body,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.updated),
            "jsdPublic": True,
        }

    def fields_json(request: Request, issue: JiraIssue) -> dict[str, Any]:
        return {
            "summary": issue.summary,
            "description": issue.description,
            "issuetype": issuetype_json(request, issue.issuetype),
            "project": project_json(request, world.projects[issue.project]),
            "labels": list(issue.labels),
            "status": status_json(request, issue.status),
            "created": jira_time(issue.created),
            "updated": jira_time(issue.updated),
            "resolution": (
                {"self": f"{base(request)}{API}/resolution/10000", "id": "10000", "name": "Done"}
                if issue.resolutiondate
                else None
            ),
            "resolutiondate": jira_time(issue.resolutiondate) if issue.resolutiondate else None,
            "comment": {
                "comments": [comment_json(request, issue, c) for c in issue.comments],
                "maxResults": len(issue.comments),
                "total": len(issue.comments),
                "startAt": 0,
            },
        }

    def issue_json(request: Request, issue: JiraIssue, wanted: list[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": issue.id}
        if wanted == ["id"]:
            return out
        every = fields_json(request, issue)
        if wanted is None or "*all" in wanted:
            chosen = every
        elif "*navigable" in wanted:
            chosen = {k: every[k] for k in NAVIGABLE_FIELDS}
        else:
            chosen = {k: every[k] for k in wanted if k in every}
        excluded = {w[1:] for w in wanted or [] if w.startswith("-")}
        out.update(
            {
                "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
                "key": issue.key,
                "self": f"{base(request)}{API}/issue/{issue.id}",
                "fields": {k: v for k, v in chosen.items() if k not in excluded},
            }
        )
        return out

    def field_list(raw: list[str] | str | None, default: list[str] | None) -> list[str] | None:
        if raw is None:
            return default
        items = raw if isinstance(raw, list) else [raw]
        return [f.strip() for item in items for f in str(item).split(",") if f.strip()] or default

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def check_fields(fields: dict[str, Any], creating: bool) -> tuple[dict[str, str], Project | None, str | None]:
        """Jira's field validation: errors by field, the project and the issue type name."""
        errors: dict[str, str] = {}
        for name in fields:
            if name not in SETTABLE_FIELDS:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        project = None
        if creating:
            ref = fields.get("project") or {}
            ref = ref if isinstance(ref, dict) else {}
            project = world.projects.get(str(ref.get("key", "")).upper()) or next(
                (p for p in world.projects.values() if p.id == str(ref.get("id", ""))), None
            )
            if project is None:
                errors["project"] = "Specify a valid project ID or key"
        issuetype = None
        if creating or "issuetype" in fields:
            ref = fields.get("issuetype") or {}
            ref = ref if isinstance(ref, dict) else {}
            issuetype = next((n for i, n, _ in ISSUE_TYPES if ref.get("id") == i or ref.get("name") == n), None)
            if issuetype is None:
                errors["issuetype"] = "Specify an issue type" if not ref else "Specify a valid issue type"
        if creating or "summary" in fields:
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif len(summary) > 255:
                errors["summary"] = "Summary must be less than 255 characters."
        for name in ("description", "environment"):
            if fields.get(name) is not None and adf_errors(fields[name]):
                errors[name] = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
        labels = fields.get("labels")
        if labels is not None and (
            not isinstance(labels, list) or any(not isinstance(x, str) or " " in x for x in labels)
        ):
            errors["labels"] = "The label must not contain spaces."
        return errors, project, issuetype

    async def create_issue(request: Request) -> Response:
        early, who = await gate(request, "issue.create")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None or not isinstance(body.get("fields"), dict):
            return finish(_errors(400, ["Request body is missing or is not a JSON object with `fields`."]))
        fields = body["fields"]
        errors, project, issuetype = check_fields(fields, creating=True)
        if errors:
            return finish(_errors(400, [], errors))
        assert project is not None and issuetype is not None
        issue = world.create(
            project, fields["summary"], fields.get("description"), issuetype, fields.get("labels") or []
        )
        stats.created += 1
        stats.created_at.append(config.clock())
        if config.after_create is not None:
            config.after_create(issue.key)
        return reply({"id": issue.id, "key": issue.key, "self": f"{base(request)}{API}/issue/{issue.id}"}, 201)

    def lookup(request: Request) -> JiraIssue | None:
        return world.find(request.path_params["key"])

    def missing() -> Response:
        return finish(_errors(404, ["Issue does not exist or you do not have permission to see it."]))

    async def get_issue(request: Request) -> Response:
        early, _ = await gate(request, "issue.get")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            wanted = field_list(request.query_params.get("fields"), None)
            return reply(issue_json(request, issue, wanted))

    async def edit_issue(request: Request) -> Response:
        early, _ = await gate(request, "issue.edit")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None:
            return finish(_errors(400, ["Request body is missing."]))
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            fields = body.get("fields") or {}
            errors, _, issuetype = check_fields(fields, creating=False)
            if "project" in fields:
                errors["project"] = "Field 'project' cannot be set. It is not on the appropriate screen, or unknown."
            if errors:
                return finish(_errors(400, [], errors))
            if "summary" in fields:
                issue.summary = fields["summary"]
            if "description" in fields:
                issue.description = fields["description"]
            if "labels" in fields:
                issue.labels = list(fields["labels"] or [])
            if issuetype:
                issue.issuetype = issuetype
            for op in (body.get("update") or {}).get("labels") or []:
                if "add" in op and op["add"] not in issue.labels:
                    issue.labels.append(op["add"])
                if "remove" in op and op["remove"] in issue.labels:
                    issue.labels.remove(op["remove"])
            issue.updated = config.clock()
        return finish(Response(status_code=204))

    async def list_comments(request: Request) -> Response:
        early, _ = await gate(request, "comment.list")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            try:
                start = max(0, int(request.query_params.get("startAt", 0)))
                size = min(MAX_MAX_RESULTS, max(1, int(request.query_params.get("maxResults", DEFAULT_MAX_RESULTS))))
            except ValueError:
                return finish(_errors(400, ["startAt and maxResults must be integers."]))
            chunk = issue.comments[start : start + size]
            return reply(
                {
                    "comments": [comment_json(request, issue, c) for c in chunk],
                    "startAt": start,
                    "maxResults": size,
                    "total": len(issue.comments),
                }
            )

    async def add_comment(request: Request) -> Response:
        early, who = await gate(request, "comment.create")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None or "body" not in body:
            return finish(_errors(400, [], {"comment": "Comment body can not be empty!"}))
        if adf_errors(body["body"]):
            return finish(_errors(400, [], {"comment": "Comment body must be an Atlassian Document."}))
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            now = config.clock()
            assert who is not None
            comment = JiraComment(str(world.next_id()), body["body"], who[0], now, now)
            issue.comments.append(comment)
            issue.updated = now
        stats.created += 1
        stats.created_at.append(now)
        return reply(comment_json(request, issue, comment), 201)

    async def update_comment(request: Request) -> Response:
        early, _ = await gate(request, "comment.update")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None or "body" not in body:
            return finish(_errors(400, [], {"comment": "Comment body can not be empty!"}))
        if adf_errors(body["body"]):
            return finish(_errors(400, [], {"comment": "Comment body must be an Atlassian Document."}))
        with world.lock:
            issue = lookup(request)
            comment = next((c for c in issue.comments if c.id == request.path_params["id"]), None) if issue else None
            if issue is None or comment is None:
                return missing()
            comment.body = body["body"]
            comment.updated = config.clock()
            return reply(comment_json(request, issue, comment))

    def link_json(request: Request, issue: JiraIssue, link: RemoteLink) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": link.id,
            "self": f"{base(request)}{API}/issue/{issue.key}/remotelink/{link.id}",
            "object": link.object,
        }
        if link.global_id is not None:
            out["globalId"] = link.global_id
        if link.relationship is not None:
            out["relationship"] = link.relationship
        if link.application is not None:
            out["application"] = link.application
        return out

    async def list_links(request: Request) -> Response:
        early, _ = await gate(request, "remotelink.list")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            global_id = request.query_params.get("globalId")
            if global_id is None:
                return reply([link_json(request, issue, lk) for lk in issue.links])
            link = next((lk for lk in issue.links if lk.global_id == global_id), None)
            if link is None:
                return finish(_errors(404, ["No remote link with this globalId exists on the issue."]))
            return reply(link_json(request, issue, link))

    async def upsert_link(request: Request) -> Response:
        early, _ = await gate(request, "remotelink.upsert")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        obj = (body or {}).get("object")
        if not isinstance(obj, dict) or not obj.get("url") or not obj.get("title"):
            return finish(_errors(400, [], {"object": "The remote link's object needs a url and a title."}))
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            assert body is not None
            global_id = body.get("globalId")
            link = next((lk for lk in issue.links if global_id and lk.global_id == global_id), None)
            status = 200
            if link is None:
                link = RemoteLink(world.next_id(), global_id, obj, body.get("relationship"), body.get("application"))
                issue.links.append(link)
                status = 201
            else:
                link.object, link.relationship = obj, body.get("relationship")
                link.application = body.get("application")
            issue.updated = config.clock()
            return reply(
                {"id": link.id, "self": f"{base(request)}{API}/issue/{issue.key}/remotelink/{link.id}"}, status
            )

    def transitions_json(request: Request, issue: JiraIssue) -> list[dict[str, Any]]:
        return [
            {
                "id": TRANSITION_IDS[s.name],
                "name": s.name,
                "to": status_json(request, s),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "looped": False,
            }
            for s in STATUSES
            if s != issue.status
        ]

    async def get_transitions(request: Request) -> Response:
        early, _ = await gate(request, "transitions.list")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            return reply({"expand": "transitions", "transitions": transitions_json(request, issue)})

    async def do_transition(request: Request) -> Response:
        early, _ = await gate(request, "transitions.do")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        wanted = ((body or {}).get("transition") or {}).get("id")
        with world.lock:
            issue = lookup(request)
            if issue is None:
                return missing()
            target = next((s for s in STATUSES if TRANSITION_IDS[s.name] == str(wanted) and s != issue.status), None)
            if target is None:
                return finish(_errors(400, [f"Transition id '{wanted}' is not valid for this issue."]))
            world.transition(issue, target.name)
        return finish(Response(status_code=204))

    async def search(request: Request) -> Response:
        early, _ = await gate(request, "search")
        if early is not None:
            return finish(early)
        if request.method == "POST":
            body = await json_body(request)
            if body is None:
                return finish(_errors(400, ["Request body is missing."]))
            jql, token = body.get("jql") or "", body.get("nextPageToken")
            raw_max, raw_fields = body.get("maxResults", DEFAULT_MAX_RESULTS), body.get("fields")
        else:
            q = request.query_params
            jql, token = q.get("jql", ""), q.get("nextPageToken")
            raw_max, raw_fields = q.get("maxResults", DEFAULT_MAX_RESULTS), q.getlist("fields") or None
        try:
            size = min(MAX_MAX_RESULTS, max(1, int(raw_max)))
        except (TypeError, ValueError):
            return finish(_errors(400, ["maxResults must be an integer."]))
        offset = 0
        if token:
            with tokens_lock:
                saved = page_tokens.get(token)
            if saved is None or saved[0] != jql:
                return finish(_errors(400, ["The provided next page token is invalid or expired."]))
            offset = saved[1]
        try:
            predicate, (order_field, descending) = compile_jql(jql, world)
        except JqlError as exc:
            return finish(_errors(400, [str(exc)]))
        wanted = field_list(raw_fields, ["id"])
        with world.lock:
            found = [i for i in world.issues.values() if predicate(i)]
            key_of: dict[str, Callable[[JiraIssue], Any]] = {
                "key": lambda i: (i.project, int(i.key.rsplit("-", 1)[1])),
                "updated": lambda i: (i.updated, int(i.id)),
            }
            found.sort(key=key_of.get(order_field, lambda i: (i.created, int(i.id))), reverse=descending)
            chunk = found[offset : offset + size]
            out: dict[str, Any] = {"issues": [issue_json(request, i, wanted) for i in chunk]}
        if offset + size < len(found):
            next_token = base64.urlsafe_b64encode(f"{world.next_id()}:{offset + size}".encode()).decode()
            with tokens_lock:
                page_tokens[next_token] = (jql, offset + size)
            out["nextPageToken"] = next_token
            out["isLast"] = False
        else:
            out["isLast"] = True
        return reply(out)

    async def myself(request: Request) -> Response:
        early, who = await gate(request, "myself")
        if early is not None:
            return finish(early)
        assert who is not None
        body = {**user_json(request, who[1], who[2]), "emailAddress": who[0], "locale": "en_US"}
        return reply(body)

    async def get_project(request: Request) -> Response:
        early, _ = await gate(request, "project")
        if early is not None:
            return finish(early)
        ref = request.path_params["key"]
        project = world.projects.get(ref.upper()) or next((p for p in world.projects.values() if p.id == ref), None)
        if project is None:
            return finish(_errors(404, [f"No project could be found with key '{ref}'."]))
        return reply(project_json(request, project, full=True))

    async def createmeta(request: Request) -> Response:
        early, _ = await gate(request, "createmeta")
        if early is not None:
            return finish(early)
        ref = request.path_params["key"]
        project = world.projects.get(ref.upper()) or next((p for p in world.projects.values() if p.id == ref), None)
        if project is None:
            return finish(_errors(400, [f"No project could be found with key '{ref}'."]))
        types = [issuetype_json(request, name) for _, name, _ in ISSUE_TYPES]
        return reply({"issueTypes": types, "maxResults": 50, "startAt": 0, "total": len(types)})

    issue_path = f"{API}/issue/{{key}}"
    app = Starlette(
        routes=[
            Route(f"{API}/issue", create_issue, methods=["POST"]),
            Route(f"{API}/issue/createmeta/{{key}}/issuetypes", createmeta, methods=["GET"]),
            Route(issue_path, get_issue, methods=["GET"]),
            Route(issue_path, edit_issue, methods=["PUT"]),
            Route(f"{issue_path}/comment", list_comments, methods=["GET"]),
            Route(f"{issue_path}/comment", add_comment, methods=["POST"]),
            Route(f"{issue_path}/comment/{{id}}", update_comment, methods=["PUT"]),
            Route(f"{issue_path}/remotelink", list_links, methods=["GET"]),
            Route(f"{issue_path}/remotelink", upsert_link, methods=["POST"]),
            Route(f"{issue_path}/transitions", get_transitions, methods=["GET"]),
            Route(f"{issue_path}/transitions", do_transition, methods=["POST"]),
            Route(f"{API}/search/jql", search, methods=["GET", "POST"]),
            Route(f"{API}/myself", myself, methods=["GET"]),
            Route(f"{API}/project/{{key}}", get_project, methods=["GET"]),
        ]
    )
    app.state.world = world
    app.state.config = config
    app.state.stats = stats
    return app

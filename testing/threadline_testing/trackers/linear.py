"""Stand-in of Linear's GraphQL API (`POST /graphql`), executing against Linear's published schema.

Every operation is parsed and validated with graphql-core against ../shared/specs/linear/schema.graphql
(the schema of linear/linear's SDK) and then executed by graphql-core on that same schema, so a
field, argument or input the real API would refuse is refused here too, and the response has
exactly the shape the schema gives. Resolvers exist for the subset an exporter needs:

- queries: `viewer`, `teams(filter:)`, `team(id:)`, `workflowStates(filter:)`, `issue(id:)` (by id
  or identifier such as ENG-12), `issues(filter:, first:, after:)`, nested `team.states`,
  `issue.state`, `issue.comments`, `issue.attachments`;
- mutations: `issueCreate`, `issueUpdate` (title, description, stateId, priority, labelIds),
  `commentCreate`, `attachmentCreate` (idempotent per (issue, url): the same url on the same issue
  updates and returns the existing attachment, as Linear documents for attachments).

Filters follow Linear's filtering guide: comparators `eq`, `neq`, `in`, `nin`, `contains`,
`containsIgnoreCase`, `notContains`, `startsWith`, `endsWith`, `eqIgnoreCase`, nested relation
filters (`team: {key: {eq: "ENG"}}`, `state: {type: {eq: "completed"}}`) and `and` / `or`.
Pagination (Linear's pagination guide): `first` (default 50), `after` cursor, `pageInfo`.

Workflow states per team (Linear's defaults): Backlog (`backlog`), Todo (`unstarted`), In Progress
(`started`), Done (`completed`), Canceled (`canceled`).

Errors, as Linear (an Apollo server) answers them:
- invalid operation: HTTP 400, `errors[].extensions.code` `GRAPHQL_VALIDATION_FAILED`
  (`GRAPHQL_PARSE_FAILED` for a syntax error);
- missing or unknown API key (`Authorization: <API key>`, no Bearer for personal keys):
  HTTP `AUTH_ERROR_STATUS`, code `AUTHENTICATION_ERROR`;
- unknown entity in a resolver: HTTP 200, `data` null, code `INVALID_INPUT`, "Entity not found: Issue";
- rate limited: HTTP 429, code `RATELIMITED`.

Rate limits (Linear's "Rate limiting" page): leaky buckets refilled at LIMIT / PERIOD, per API key,
one of requests (`REQUESTS_PER_HOUR`) and one of complexity points (`COMPLEXITY_PER_HOUR`); a single
query may cost at most `MAX_QUERY_COMPLEXITY`. Complexity is computed as Linear describes it:
0.1 point per scalar field, 1 per object, connections multiply their children by `first`
(default 50), rounded up. Every response carries `X-RateLimit-Requests-Limit`,
`X-RateLimit-Requests-Remaining`, `X-RateLimit-Requests-Reset` (Unix epoch milliseconds, when the
bucket is full again), `X-Complexity` (this query's cost), `X-RateLimit-Complexity-Limit`,
`-Remaining`, `-Reset`. The hour is scaled by `time_scale` for benchmarks.

Hooks for tests: `LinearWorld.complete_as_person`, `cancel_as_person`, `edit_description_as_person`.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import graphql
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from threadline_testing.trackers.common import Faults, LeakyBucket, TrafficStats
from threadline_testing.trackers.specs import linear_schema

REQUESTS_PER_HOUR = 5_000  # requests per hour per API key (Linear's rate-limiting page)
COMPLEXITY_PER_HOUR = 3_000_000  # complexity points per hour per API key (Linear's rate-limiting page)
MAX_QUERY_COMPLEXITY = 10_000  # the most one query may cost
DEFAULT_PAGE = 50  # Linear's default `first`
HOUR_SECONDS = 3_600.0
AUTH_ERROR_STATUS = 401
SCALAR_COST = 0.1
OBJECT_COST = 1.0
COMPARATORS = frozenset(
    {"eq", "neq", "in", "nin", "contains", "containsIgnoreCase", "notContains", "startsWith", "endsWith"}
    | {"eqIgnoreCase", "neqIgnoreCase", "notContainsIgnoreCase", "startsWithIgnoreCase", "null"}
)
DEFAULT_STATES = (
    ("Backlog", "backlog", "#bec2c8"),
    ("Todo", "unstarted", "#e2e2e2"),
    ("In Progress", "started", "#f2c94c"),
    ("Done", "completed", "#5e6ad2"),
    ("Canceled", "canceled", "#95a2b3"),
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


class LinearWorld:
    """A Linear workspace: teams with workflow states, issues, comments, attachments (plain dicts)."""

    def __init__(self, teams: tuple[tuple[str, str], ...] = (("ENG", "Engineering"),), clock=time.time) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.teams: dict[str, dict[str, Any]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        self.sync_ids = itertools.count(1)
        self.viewer = self._user("Threadline Bot", "bot@example.com")
        for key, name in teams:
            self.add_team(key, name)

    def _user(self, name: str, email: str) -> dict[str, Any]:
        now = _iso(0)
        return {
            "__typename": "User",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, email)),
            "name": name,
            "displayName": name.split()[0].lower(),
            "email": email,
            "active": True,
            "admin": False,
            "guest": False,
            "isMe": True,
            "createdAt": now,
            "updatedAt": now,
            "url": f"https://linear.app/standin/profiles/{email.split('@')[0]}",
        }

    def add_team(self, key: str, name: str) -> dict[str, Any]:
        with self.lock:
            now = _iso(self.clock())
            team: dict[str, Any] = {
                "__typename": "Team",
                "id": str(uuid.uuid4()),
                "key": key,
                "name": name,
                "displayName": name,
                "private": False,
                "createdAt": now,
                "updatedAt": now,
                "issueCount": 0,
            }
            for position, (state_name, state_type, color) in enumerate(DEFAULT_STATES):
                state = {
                    "__typename": "WorkflowState",
                    "id": str(uuid.uuid4()),
                    "name": state_name,
                    "type": state_type,
                    "color": color,
                    "position": float(position),
                    "description": None,
                    "createdAt": now,
                    "updatedAt": now,
                    "team": team,
                }
                self.states[state["id"]] = state
            self.teams[team["id"]] = team
            return team

    def team_states(self, team_id: str) -> list[dict[str, Any]]:
        return sorted((s for s in self.states.values() if s["team"]["id"] == team_id), key=lambda s: s["position"])

    def state_of_type(self, team_id: str, state_type: str) -> dict[str, Any]:
        return next(s for s in self.team_states(team_id) if s["type"] == state_type)

    def find_issue(self, id_or_identifier: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.issues.get(id_or_identifier)
            if found is None:
                found = next((i for i in self.issues.values() if i["identifier"] == id_or_identifier.upper()), None)
            return found

    def set_state(self, issue: dict[str, Any], state: dict[str, Any]) -> None:
        with self.lock:
            now = _iso(self.clock())
            issue["state"] = state
            issue["completedAt"] = now if state["type"] == "completed" else None
            issue["canceledAt"] = now if state["type"] == "canceled" else None
            issue["updatedAt"] = now

    def complete_as_person(self, identifier: str) -> None:
        """Move an issue to Done as a person would (test hook)."""
        issue = self.find_issue(identifier)
        assert issue is not None, identifier
        self.set_state(issue, self.state_of_type(issue["team"]["id"], "completed"))

    def cancel_as_person(self, identifier: str) -> None:
        """Cancel an issue as a person would (test hook)."""
        issue = self.find_issue(identifier)
        assert issue is not None, identifier
        self.set_state(issue, self.state_of_type(issue["team"]["id"], "canceled"))

    def edit_description_as_person(self, identifier: str, edit: Callable[[str], str]) -> None:
        """Rewrite an issue's Markdown description as a person would (test hook)."""
        with self.lock:
            issue = self.find_issue(identifier)
            assert issue is not None, identifier
            issue["description"] = edit(issue["description"] or "")
            issue["updatedAt"] = _iso(self.clock())


@dataclass
class LinearConfig:
    """Behaviour of one Linear stand-in."""

    world: LinearWorld = field(default_factory=LinearWorld)
    api_keys: frozenset[str] = frozenset({"lin_api_standin"})
    requests_per_hour: int = REQUESTS_PER_HOUR
    complexity_per_hour: int = COMPLEXITY_PER_HOUR
    max_query_complexity: int = MAX_QUERY_COMPLEXITY
    time_scale: float = 1.0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    # test hook: called with the new issue's identifier after it is created, before the answer is sent
    after_create: Callable[[str], None] | None = None


def _not_found(kind: str) -> GraphQLError:
    return GraphQLError(
        f"Entity not found: {kind}",
        extensions={"code": "INVALID_INPUT", "type": "invalid input", "userPresentableMessage": f"{kind} not found."},
    )


def _invalid(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "INVALID_INPUT", "type": "invalid input"})


def _compare(value: Any, comparator: dict[str, Any]) -> bool:
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    low = text.lower()
    checks: dict[str, Callable[[Any], bool]] = {
        "eq": lambda x: value == x,
        "neq": lambda x: value != x,
        "in": lambda x: value in x,
        "nin": lambda x: value not in x,
        "contains": lambda x: x in text,
        "containsIgnoreCase": lambda x: x.lower() in low,
        "notContains": lambda x: x not in text,
        "notContainsIgnoreCase": lambda x: x.lower() not in low,
        "startsWith": lambda x: text.startswith(x),
        "startsWithIgnoreCase": lambda x: low.startswith(x.lower()),
        "endsWith": lambda x: text.endswith(x),
        "eqIgnoreCase": lambda x: low == x.lower(),
        "neqIgnoreCase": lambda x: low != x.lower(),
        "null": lambda x: (value is None) == x,
    }
    return all(checks[op](arg) for op, arg in comparator.items() if op in checks)


def matches(entity: dict[str, Any] | None, flt: dict[str, Any] | None) -> bool:
    """Linear's filter semantics on one entity (a dict keyed by GraphQL field names)."""
    if not flt:
        return True
    if entity is None:
        return False
    for key, cond in flt.items():
        if key == "and":
            if not all(matches(entity, sub) for sub in cond):
                return False
        elif key == "or":
            if not any(matches(entity, sub) for sub in cond):
                return False
        elif isinstance(cond, dict) and cond and set(cond) <= COMPARATORS:
            if not _compare(entity.get(key), cond):
                return False
        elif isinstance(cond, dict):
            if not matches(entity.get(key), cond):
                return False
    return True


def connection(items: list[dict[str, Any]], first: int | None, after: str | None) -> dict[str, Any]:
    """A Relay-style connection as Linear returns it (cursor = the node's id)."""
    start = 0
    if after:
        ids = [i["id"] for i in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    size = first if first is not None else DEFAULT_PAGE
    chunk = items[start : start + size]
    return {
        "nodes": chunk,
        "edges": [{"node": n, "cursor": n["id"]} for n in chunk],
        "pageInfo": {
            "hasNextPage": start + size < len(items),
            "hasPreviousPage": start > 0,
            "startCursor": chunk[0]["id"] if chunk else None,
            "endCursor": chunk[-1]["id"] if chunk else None,
        },
    }


def query_complexity(schema: graphql.GraphQLSchema, document: graphql.DocumentNode, variables: dict[str, Any]) -> int:
    """Linear's complexity estimate of the document's operations (see the module docstring)."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, graphql.FragmentDefinitionNode)}

    def arg_value(node: graphql.FieldNode, name: str) -> Any:
        for arg in node.arguments or ():
            if arg.name.value == name:
                return graphql.value_from_ast_untyped(arg.value, variables)
        return None

    def cost(selection_set: graphql.SelectionSetNode | None, parent: Any) -> float:
        total = 0.0
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, graphql.FieldNode):
                fields = getattr(parent, "fields", {})
                definition = fields.get(sel.name.value)
                if definition is None:
                    total += SCALAR_COST  # __typename and friends
                    continue
                named = graphql.get_named_type(definition.type)
                if graphql.is_leaf_type(named):
                    total += SCALAR_COST
                    continue
                inner = OBJECT_COST + cost(sel.selection_set, named)
                if named.name.endswith("Connection"):
                    first = arg_value(sel, "first") or arg_value(sel, "last") or DEFAULT_PAGE
                    inner *= int(first)
                total += inner
            elif isinstance(sel, graphql.InlineFragmentNode):
                target = schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += cost(sel.selection_set, target)
            elif isinstance(sel, graphql.FragmentSpreadNode) and sel.name.value in fragments:
                frag = fragments[sel.name.value]
                total += cost(frag.selection_set, schema.get_type(frag.type_condition.name.value))
        return total

    out = 0.0
    for definition in document.definitions:
        if isinstance(definition, graphql.OperationDefinitionNode):
            root = schema.get_root_type(definition.operation)
            out += cost(definition.selection_set, root)
    return math.ceil(out)


def create_app(config: LinearConfig | None = None) -> Starlette:
    """The ASGI app; `app.state.world`, `.config` and `.stats` expose its state."""
    config = config or LinearConfig()
    world = config.world
    schema = linear_schema()
    stats = TrafficStats()
    period = HOUR_SECONDS * config.time_scale
    requests_bucket = LeakyBucket(config.requests_per_hour, period, config.clock)
    complexity_bucket = LeakyBucket(config.complexity_per_hour, period, config.clock)

    def now_iso() -> str:
        return _iso(config.clock())

    def issue_view(issue: dict[str, Any]) -> dict[str, Any]:
        """An issue with its lazily computed connections (resolvers are callables on the dict)."""

        def comments(_info: Any, first: int | None = None, after: str | None = None, **_: Any) -> dict[str, Any]:
            items = [c for c in world.comments.values() if c["issue"]["id"] == issue["id"]]
            return connection(sorted(items, key=lambda c: c["createdAt"]), first, after)

        def attachments(_info: Any, first: int | None = None, after: str | None = None, **_: Any) -> dict[str, Any]:
            items = [a for a in world.attachments.values() if a["issue"]["id"] == issue["id"]]
            return connection(sorted(items, key=lambda a: a["createdAt"]), first, after)

        return {**issue, "team": team_view(issue["team"]), "comments": comments, "attachments": attachments}

    def team_view(team: dict[str, Any]) -> dict[str, Any]:
        def states(_info: Any, first: int | None = None, after: str | None = None, filter=None, **_: Any):
            return connection([s for s in world.team_states(team["id"]) if matches(s, filter)], first, after)

        def issues(_info: Any, first: int | None = None, after: str | None = None, filter=None, **_: Any):
            found = [issue_view(i) for i in world.issues.values() if i["team"]["id"] == team["id"]]
            return connection([i for i in found if matches(i, filter)], first, after)

        return {**team, "states": states, "issues": issues}

    # --- queries -------------------------------------------------------------------------------

    def viewer(_info: Any) -> dict[str, Any]:
        return world.viewer

    def teams(_info: Any, filter=None, first: int | None = None, after: str | None = None, **_: Any):
        with world.lock:
            found = [team_view(t) for t in world.teams.values() if matches(t, filter)]
            return connection(found, first, after)

    def team(_info: Any, id: str) -> dict[str, Any]:
        found = world.teams.get(id) or next((t for t in world.teams.values() if t["key"] == id), None)
        if found is None:
            raise _not_found("Team")
        return team_view(found)

    def workflow_states(_info: Any, filter=None, first: int | None = None, after: str | None = None, **_: Any):
        with world.lock:
            found = sorted(world.states.values(), key=lambda s: (s["team"]["key"], s["position"]))
            return connection([s for s in found if matches(s, filter)], first, after)

    def issue(_info: Any, id: str) -> dict[str, Any]:
        found = world.find_issue(id)
        if found is None:
            raise _not_found("Issue")
        return issue_view(found)

    def issues(_info: Any, filter=None, first: int | None = None, after: str | None = None, **_: Any):
        with world.lock:
            found = sorted(world.issues.values(), key=lambda i: i["createdAt"], reverse=True)
            return connection([issue_view(i) for i in found if matches(i, filter)], first, after)

    # --- mutations -----------------------------------------------------------------------------

    def payload(key: str, entity: dict[str, Any]) -> dict[str, Any]:
        return {"success": True, "lastSyncId": float(next(world.sync_ids)), key: entity}

    def issue_create(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
        with world.lock:
            team_ = world.teams.get(input["teamId"])
            if team_ is None:
                raise _not_found("Team")
            if not (input.get("title") or "").strip():
                raise _invalid("Argument Validation Error: title should not be empty")
            state = world.states.get(input.get("stateId") or "") or world.state_of_type(team_["id"], "unstarted")
            if state["team"]["id"] != team_["id"]:
                raise _invalid("The workflow state does not belong to the issue's team")
            team_["issueCount"] += 1
            number = team_["issueCount"]
            now = now_iso()
            identifier = f"{team_['key']}-{number}"
            created = {
                "__typename": "Issue",
                "id": input.get("id") or str(uuid.uuid4()),
                "identifier": identifier,
                "number": float(number),
                "title": input["title"],
                "description": input.get("description"),
                "priority": float(input.get("priority") or 0),
                "priorityLabel": "No priority",
                "url": f"https://linear.app/standin/issue/{identifier.lower()}",
                "branchName": identifier.lower(),
                "team": team_,
                "state": state,
                "createdAt": now,
                "updatedAt": now,
                "completedAt": None,
                "canceledAt": None,
                "archivedAt": None,
                "labelIds": list(input.get("labelIds") or []),
                "creator": world.viewer,
                "trashed": None,
            }
            world.issues[created["id"]] = created
            stats.created += 1
            stats.created_at.append(config.clock())
            if config.after_create is not None:
                config.after_create(identifier)
            return payload("issue", issue_view(created))

    def issue_update(_info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        with world.lock:
            found = world.find_issue(id)
            if found is None:
                raise _not_found("Issue")
            for key in ("title", "description", "priority", "labelIds"):
                if key in input:
                    found[key] = float(input[key] or 0) if key == "priority" else input[key]
            if input.get("stateId"):
                state = world.states.get(input["stateId"])
                if state is None or state["team"]["id"] != found["team"]["id"]:
                    raise _not_found("WorkflowState")
                world.set_state(found, state)
            found["updatedAt"] = now_iso()
            return payload("issue", issue_view(found))

    def comment_create(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
        with world.lock:
            parent = world.find_issue(input.get("issueId") or "")
            if parent is None:
                raise _not_found("Issue")
            if not (input.get("body") or "").strip():
                raise _invalid("Argument Validation Error: body should not be empty")
            now = now_iso()
            comment = {
                "__typename": "Comment",
                "id": input.get("id") or str(uuid.uuid4()),
                "body": input["body"],
                "createdAt": now,
                "updatedAt": now,
                "editedAt": None,
                "archivedAt": None,
                "url": f"{parent['url']}#comment-{len(world.comments) + 1}",
                "user": world.viewer,
                "issue": issue_view(parent),
                "issueId": parent["id"],
            }
            world.comments[comment["id"]] = comment
            parent["updatedAt"] = now
            stats.created += 1
            stats.created_at.append(config.clock())
            return payload("comment", comment)

    def attachment_create(_info: Any, input: dict[str, Any]) -> dict[str, Any]:
        with world.lock:
            parent = world.find_issue(input["issueId"])
            if parent is None:
                raise _not_found("Issue")
            now = now_iso()
            existing = next(
                (
                    a
                    for a in world.attachments.values()
                    if a["issue"]["id"] == parent["id"] and a["url"] == input["url"]
                ),
                None,
            )
            if existing is not None:  # Linear: idempotent per (issue, url); the same call updates it
                existing.update(
                    {"title": input["title"], "subtitle": input.get("subtitle"), "updatedAt": now},
                )
                if input.get("metadata") is not None:
                    existing["metadata"] = input["metadata"]
                return payload("attachment", existing)
            attachment = {
                "__typename": "Attachment",
                "id": input.get("id") or str(uuid.uuid4()),
                "title": input["title"],
                "subtitle": input.get("subtitle"),
                "url": input["url"],
                "metadata": input.get("metadata") or {},
                "groupBySource": bool(input.get("groupBySource")),
                "sourceType": None,
                "createdAt": now,
                "updatedAt": now,
                "archivedAt": None,
                "creator": world.viewer,
                "issue": issue_view(parent),
            }
            world.attachments[attachment["id"]] = attachment
            stats.created += 1
            stats.created_at.append(config.clock())
            return payload("attachment", attachment)

    query_root = {
        "viewer": viewer,
        "teams": teams,
        "team": team,
        "workflowStates": workflow_states,
        "issue": issue,
        "issues": issues,
    }
    mutation_root = {
        "issueCreate": issue_create,
        "issueUpdate": issue_update,
        "commentCreate": comment_create,
        "attachmentCreate": attachment_create,
    }

    # --- HTTP ----------------------------------------------------------------------------------

    def gql_error(status: int, message: str, code: str, headers: dict[str, str] | None = None, **ext: Any):
        body = {"errors": [{"message": message, "extensions": {"code": code, **ext}}]}
        return JSONResponse(body, status_code=status, headers=headers)

    def limit_headers(req_remaining: float, req_full: float, cost: int, cx_remaining: float, cx_full: float):
        return {
            "X-RateLimit-Requests-Limit": str(config.requests_per_hour),
            "X-RateLimit-Requests-Remaining": str(int(req_remaining)),
            "X-RateLimit-Requests-Reset": str(int(req_full * 1000)),
            "X-Complexity": str(cost),
            "X-RateLimit-Complexity-Limit": str(config.complexity_per_hour),
            "X-RateLimit-Complexity-Remaining": str(int(cx_remaining)),
            "X-RateLimit-Complexity-Reset": str(int(cx_full * 1000)),
        }

    async def endpoint(request: Request) -> Response:
        response = await handle(request)
        stats.by_status[response.status_code] += 1
        return response

    async def handle(request: Request) -> Response:
        stats.requests += 1
        key = request.headers.get("authorization", "").strip()
        if key.lower().startswith("bearer "):
            key = key[7:].strip()
        if key not in config.api_keys:
            stats.unauthorized += 1
            return gql_error(
                AUTH_ERROR_STATUS,
                "Authentication required, not authenticated",
                "AUTHENTICATION_ERROR",
                type="authentication error",
                userPresentableMessage="You need to authenticate to access this operation.",
            )
        try:
            body = json.loads(await request.body())
            query, variables = body["query"], body.get("variables") or {}
            operation_name = body.get("operationName")
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return gql_error(400, "Must provide query string.", "BAD_USER_INPUT")
        try:
            document = graphql.parse(query)
        except GraphQLError as exc:
            return gql_error(400, exc.message, "GRAPHQL_PARSE_FAILED")
        errors = graphql.validate(schema, document)
        if errors:
            body = {
                "errors": [
                    {**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED", "type": "graphql error"}}
                    for e in errors
                ]
            }
            return JSONResponse(body, status_code=400)
        cost = query_complexity(schema, document, variables)
        stats.by_route[operation_name or "anonymous"] += 1
        if cost > config.max_query_complexity:
            return gql_error(
                400, f"Query too complex: {cost} exceeds {config.max_query_complexity}", "QUERY_TOO_COMPLEX"
            )
        req_ok, req_remaining, req_full = requests_bucket.take(1)
        cx_ok, cx_remaining, cx_full = (False, 0.0, 0.0)
        if req_ok:
            cx_ok, cx_remaining, cx_full = complexity_bucket.take(cost)
        else:
            cx_remaining, cx_full = complexity_bucket.take(0)[1:]
        headers = limit_headers(req_remaining, req_full, cost, cx_remaining, cx_full)
        if not req_ok or not cx_ok:
            if req_ok:
                stats.complexity_limited += 1
            else:
                stats.primary_limited += 1
            return gql_error(
                429,
                "Rate limit exceeded",
                "RATELIMITED",
                headers,
                type="ratelimited",
                userPresentableMessage="Too many API requests. Please try again later.",
            )
        fault = await config.faults.roll()
        if fault == "5xx":
            stats.injected_5xx += 1
            return gql_error(500, "Internal server error", "INTERNAL_SERVER_ERROR", headers)
        if fault == "429":
            stats.injected_429 += 1
            return gql_error(429, "Rate limit exceeded", "RATELIMITED", headers, type="ratelimited")
        operation = graphql.get_operation_ast(document, operation_name)
        if operation is None:
            return gql_error(400, "Could not determine which operation to run.", "GRAPHQL_VALIDATION_FAILED")
        root = mutation_root if operation.operation == graphql.OperationType.MUTATION else query_root
        result = graphql.execute(schema, document, root, variable_values=variables, operation_name=operation_name)
        if graphql.pyutils.is_awaitable(result):
            result = await result  # type: ignore[misc]
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [
                {**e.formatted, "extensions": e.extensions or {"code": "INTERNAL_SERVER_ERROR"}} for e in result.errors
            ]
        return JSONResponse(out, status_code=200, headers=headers)

    app = Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])])
    app.state.world = world
    app.state.config = config
    app.state.stats = stats
    app.state.complexity = lambda query, variables=None: query_complexity(schema, graphql.parse(query), variables or {})
    return app

"""Validators of the tracker stand-ins' traffic: GitHub and Jira OpenAPI, Jira ADF, Linear GraphQL.

Every exchange crossing a tracker stand-in in the tests is checked against the vendor's published
description in `../shared/specs/` (see each folder's NOTES.md). The files are never edited; their
documented gaps are patched in memory, each patch listed here so nothing changes silently.

GitHub (`GITHUB`, api.github.com.issues.json, octokit/openapi 23.0.2):

1. declare 401 (`basic-error`) on every operation: GitHub answers a bad or missing token with
   401 "Bad credentials" everywhere, the file declares it on two operations only;
2. declare 403 and 429 (`basic-error`) on every operation: GitHub's documented answers to an
   exhausted primary or secondary rate limit ("Rate limits for the REST API"), absent from the file;
3. declare 500 and 503 (`basic-error`) where missing: server faults the stand-in injects on purpose;
4. declare 404 and 422 (`basic-error` / `validation-error`) where missing (an unknown issue or
   comment is 404 on every issue route; a bad body is 422, GitHub's "Validation failed");
5. add `null` to the `enum` of every nullable enum (issue `state_reason`, ...): GitHub sends
   `"state_reason": null` for an open issue, and OpenAPI 3.0.3 says a nullable enum must list
   null explicitly, which the file does not, so strict validators reject GitHub's real answers.

Jira (`JIRA`, jira-cloud-platform.issues.json, Atlassian's OpenAPI, late 2025):

1. declare 429 (`ErrorCollection`) on every operation: Atlassian documents 429 with Retry-After
   ("Rate limiting" in the Jira Cloud developer guide), the file does not;
2. give the error statuses the file declares without a body (401, 403, 404, 409, 422, 400) the
   `ErrorCollection` body Jira sends (`errorMessages` + `errors`), and declare 400/401/404 where missing;
3. declare 500 and 503 (`ErrorCollection`) for injected server faults;
4. drop the `application/json` content declared on 204 responses (edit issue, do transition):
   a 204 has no body by definition (RFC 9110), and Jira sends none;
5. `GET /issue/{key}/remotelink` answers a JSON array of `RemoteIssueLink` (the file's own example
   is an array; a single object only when `globalId` is given), so its 200 schema becomes
   `oneOf` [RemoteIssueLink, array of RemoteIssueLink];
6. `format: date-time` becomes a pattern that also accepts Jira's timestamp form
   `2024-01-31T12:00:00.000+0000` (an offset without a colon, which RFC 3339 validators reject
   although it is what Jira sends in `created`, `updated`, ...);
7. define the `basicAuth` security scheme (HTTP basic) that the operations reference but
   `components.securitySchemes` omits (Atlassian's "Basic auth for REST APIs"), and drop the
   OAuth2 alternatives from each operation's `security`: openapi-core cannot check OAuth2 (it
   warns on every unauthenticated request), and the stand-in speaks basic auth only.

ADF (`AdfValidator`): the OpenAPI file types `description` and comment `body` as anything, so every
Atlassian Document Format document in a request (issue `fields.description`, `fields.environment`,
comment `body`) and in a 2xx response is validated against adf-schema-v1-full.json with `jsonschema`.

Linear (`LinearValidator`): every operation is parsed and validated against schema.graphql with
graphql-core (`graphql.validate`), and every response must be a GraphQL response (`data` and/or
`errors`, each error with a `message`).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match

from threadline_testing.contract import (
    CapturedRequest,
    CapturedResponse,
    ContractValidator,
    SpecProfile,
    _walk,
)
from threadline_testing.paths import spec_path

GITHUB_HOST_URL = "https://api.github.com"
JIRA_HOST_URL = "https://your-domain.atlassian.net"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
# RFC 3339 date-time, or Jira's form with a colon-less offset (2024-01-31T12:00:00.000+0000)
JIRA_TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$"
MAX_ERROR_CHARS = 2000  # a violation message is for a person; the first schema error says enough


def _github_path() -> Path:
    return spec_path("github", "api.github.com.issues.json")


def _jira_path() -> Path:
    return spec_path("jira", "jira-cloud-platform.issues.json")


def adf_schema_path() -> Path:
    return spec_path("jira", "adf-schema-v1-full.json")


def linear_schema_path() -> Path:
    return spec_path("linear", "schema.graphql")


def _operations(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in spec["paths"].values():
        for method in HTTP_METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield op


def _json_response(description: str, schema_ref: str) -> dict[str, Any]:
    return {
        "description": f"{description} (patched in: the vendor answers it, the published file omits it)",
        "content": {"application/json": {"schema": {"$ref": schema_ref}}},
    }


def patch_github(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The GitHub description with patches 1-4 of the module docstring."""
    spec = copy.deepcopy(dict(raw))
    basic = "#/components/schemas/basic-error"
    for op in _operations(spec):
        responses = op.setdefault("responses", {})
        for status in ("401", "403", "429", "404", "500", "503"):
            responses.setdefault(status, _json_response(f"HTTP {status}", basic))
        responses.setdefault("422", _json_response("Validation failed", "#/components/schemas/validation-error"))
    for node in _walk(spec):
        if node.get("nullable") is True and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)
    return spec


def patch_jira(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The Jira description with patches 1-3 of the module docstring."""
    spec = copy.deepcopy(dict(raw))
    errors = "#/components/schemas/ErrorCollection"
    for op in _operations(spec):
        responses = op.setdefault("responses", {})
        for status, response in list(responses.items()):
            if status[0] in "45" and isinstance(response, dict) and not response.get("content"):
                response["content"] = {"application/json": {"schema": {"$ref": errors}}}
        for status in ("400", "401", "404", "429", "500", "503"):
            responses.setdefault(status, _json_response(f"HTTP {status}", errors))
        if isinstance(op.get("security"), list):
            op["security"] = [alt for alt in op["security"] if "OAuth2" not in alt]
        if isinstance(responses.get("204"), dict):
            responses["204"].pop("content", None)
    spec["components"].setdefault("securitySchemes", {})["basicAuth"] = {"type": "http", "scheme": "basic"}
    links = spec["paths"]["/rest/api/3/issue/{issueIdOrKey}/remotelink"]["get"]["responses"]["200"]
    link_ref = {"$ref": "#/components/schemas/RemoteIssueLink"}
    links["content"]["application/json"]["schema"] = {"oneOf": [link_ref, {"type": "array", "items": link_ref}]}
    for node in _walk(spec):
        if node.get("type") == "string" and node.get("format") == "date-time":
            del node["format"]
            node["pattern"] = JIRA_TIMESTAMP_PATTERN
    return spec


GITHUB = SpecProfile(name="github", path=_github_path, host_url=GITHUB_HOST_URL, patch=patch_github)
JIRA = SpecProfile(name="jira", path=_jira_path, host_url=JIRA_HOST_URL, patch=patch_jira)


# --- ADF ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _adf_validator() -> Draft4Validator:
    schema = json.loads(adf_schema_path().read_text())
    return Draft4Validator(schema)


def adf_errors(document: Any) -> list[str]:
    """Why `document` is not a valid ADF document (empty when it is)."""
    validator = _adf_validator()
    errors = list(validator.iter_errors(document))
    if not errors:
        return []
    best = best_match(errors)
    where = "/".join(str(p) for p in best.absolute_path) or "(root)"
    return [f"ADF invalid at {where}: {best.message}"[:MAX_ERROR_CHARS]]


ADF_REQUEST_FIELDS = ("description", "environment")  # rich-text system fields of an issue in v3


def _adf_documents(path: str, body: Any) -> Iterator[tuple[str, Any]]:
    """The ADF documents in a Jira request or response body: (where, document) pairs."""
    if not isinstance(body, dict):
        return
    fields = body.get("fields")
    if isinstance(fields, dict):
        for name in ADF_REQUEST_FIELDS:
            if fields.get(name) is not None:
                yield f"fields.{name}", fields[name]
    if "/comment" in path and "body" in body:
        yield "body", body["body"]
    for index, comment in enumerate(body.get("comments") or []):
        if isinstance(comment, dict) and "body" in comment:
            yield f"comments[{index}].body", comment["body"]
    for index, issue in enumerate(body.get("issues") or []):
        for where, doc in _adf_documents("", issue):
            yield f"issues[{index}].{where}", doc


@dataclass
class AdfValidator:
    """An extra check for the Jira `ContractValidator`: every ADF document crossing it is valid.

    Requests are checked whatever the answer (a client sending bad ADF is the bug to catch);
    responses only when 2xx. Counts documents and violations (thread-safe).
    """

    documents: int = 0
    violations: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _check(self, side: str, path: str, data: bytes | None) -> list[tuple[str, str]]:
        if not data:
            return []
        try:
            body = json.loads(data)
        except ValueError:
            return []
        found: list[tuple[str, str]] = []
        count = 0
        for where, document in _adf_documents(path, body):
            count += 1
            found.extend((side, f"{where}: {error}") for error in adf_errors(document))
        with self._lock:
            self.documents += count
            self.violations += len(found)
        return found

    def __call__(self, request: CapturedRequest, response: CapturedResponse) -> list[tuple[str, str]]:
        found = self._check("request", request.path, request.body_bytes)
        if 200 <= response.status_code < 300:
            found += self._check("response", request.path, response.data)
        return found


def github_validator() -> ContractValidator:
    """A validator of GitHub traffic (patched octokit description)."""
    return ContractValidator.for_profile(GITHUB)


def jira_validator(adf: AdfValidator | None = None) -> tuple[ContractValidator, AdfValidator]:
    """A validator of Jira traffic (patched Atlassian description) and its ADF check."""
    adf = adf or AdfValidator()
    return ContractValidator.for_profile(JIRA, extra_checks=[adf]), adf


# --- Linear GraphQL ----------------------------------------------------------------------------

_schema_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _linear_schema(path_str: str) -> graphql.GraphQLSchema:
    return graphql.build_schema(Path(path_str).read_text(), assume_valid_sdl=True)


def linear_schema() -> graphql.GraphQLSchema:
    """Linear's published schema, built once per process (about a second)."""
    with _schema_lock:
        return _linear_schema(str(linear_schema_path()))


def graphql_errors(query: str, schema: graphql.GraphQLSchema | None = None) -> list[graphql.GraphQLError]:
    """Syntax and validation errors of one operation against Linear's schema (empty when valid)."""
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError as exc:
        return [exc]
    return list(graphql.validate(schema or linear_schema(), document))


@dataclass(frozen=True)
class GraphQLViolation:
    """One exchange whose operation or response broke Linear's contract."""

    operation: str
    status: int
    side: str
    error: str

    def __str__(self) -> str:
        return f"{self.operation} -> {self.status}: {self.side}: {self.error}"


class LinearValidator:
    """Validates every GraphQL exchange: the operation against the schema, the response's shape."""

    name = "linear"

    def __init__(self, schema: graphql.GraphQLSchema | None = None) -> None:
        self.schema = schema or linear_schema()
        self.exchanges = 0
        self.violations: list[GraphQLViolation] = []
        self._lock = threading.Lock()

    def check(self, request_body: bytes, status: int, response_body: bytes) -> list[GraphQLViolation]:
        """Validate one exchange; return (and record) its violations."""
        found: list[GraphQLViolation] = []
        label = "?"
        try:
            payload = json.loads(request_body)
            query = payload["query"]
            label = (payload.get("operationName") or query.strip().split("{", 1)[0].strip() or "query")[:80]
            for error in graphql_errors(query, self.schema):
                found.append(GraphQLViolation(label, status, "request", error.message[:MAX_ERROR_CHARS]))
        except (ValueError, KeyError, TypeError, AttributeError):
            found.append(GraphQLViolation(label, status, "request", "not a GraphQL request (JSON with `query`)"))
        try:
            result = json.loads(response_body)
            if not isinstance(result, dict) or not ({"data", "errors"} & set(result)):
                raise ValueError("neither data nor errors")
            if set(result) - {"data", "errors", "extensions"}:
                raise ValueError(f"unexpected top-level keys {sorted(set(result) - {'data', 'errors', 'extensions'})}")
            for error in result.get("errors") or []:
                if not isinstance(error, dict) or not isinstance(error.get("message"), str):
                    raise ValueError("an error without a message")
        except ValueError as exc:
            found.append(GraphQLViolation(label, status, "response", f"not a GraphQL response: {exc}"))
        with self._lock:
            self.exchanges += 1
            self.violations.extend(found)
        return found


class GraphQLCheckingMiddleware:
    """ASGI middleware: validate every POST /graphql exchange crossing the wrapped app."""

    def __init__(self, app: Any, validator: LinearValidator) -> None:
        self.app = app
        self.validator = validator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status: list[int] = []
        resp_body: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                resp_body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        self.validator.check(body, status[0] if status else 0, b"".join(resp_body))

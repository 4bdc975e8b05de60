"""Validate HTTP traffic against a vendor's published OpenAPI description.

Why: the stand-in servers and our clients must agree with the vendor's contract, not with our
guess of it. Every request and response crossing a stand-in in the tests goes through
`ContractValidator`; violations are collected and the suite fails on any of them.

The module is generic: a `SpecProfile` names a description file, the host it is validated
as, and the in-memory patch of that file's documented defects. `INTERCOM` (below) is the
default profile, so `load_openapi()` and `ContractValidator()` keep meaning Intercom 2.16;
the tracker profiles (GitHub, Jira) live in `threadline_testing.trackers.specs`.
`ContractValidator(extra_checks=...)` runs further body checks per exchange (Jira's ADF
documents, for example) and records their findings as violations of the same exchange.

Intercom profile:

The published file has known defects (see ../shared/specs/intercom/NOTES.md). We load it
once per process, patch it in memory (`patch_spec`), and never edit the file:

1. drop two reporting-data paths that declare no `job_identifier` parameter;
2. mark components referenced with a sibling `nullable: true` as nullable;
3. declare 400 and 429 (error.list) on the conversation and contact operations.

Additional patches of our own, same reason (Intercom answers them, the file omits them),
listed so that nothing is changed silently:

4. declare 401, 404 and 500 (error.list) on the conversation and contact operations, and
   400, 401, 404, 429 and 500 on /me, /admins and /tags, where missing: 401 is Intercom's
   answer to a bad token, 404 to an unknown contact, 429 to any rate-limited call, 500 to a
   server fault (which the stand-in injects on purpose).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from threadline_testing.paths import spec_path as shared_spec

logger = logging.getLogger(__name__)

SPEC_ENV_VAR = "THREADLINE_INTERCOM_SPEC"
DEFAULT_SPEC_PATH = shared_spec("intercom", "api.intercom.io.2.16.yaml")
SPEC_HOST_URL = "https://api.intercom.io"  # requests are validated as if sent to the US server
CACHE_DIR = Path(os.environ.get("THREADLINE_CACHE_DIR", "/tmp/threadline-cache"))

BROKEN_PATHS = (
    "/export/reporting_data/{job_identifier}",
    "/download/reporting_data/{job_identifier}",
)
# NOTES.md patch 3: Intercom answers these on conversation/contact operations.
NOTES_UNDECLARED_STATUSES = ("400", "429")
# Our patch 4: see the module docstring.
EXTRA_UNDECLARED_STATUSES = ("401", "404", "500")
PATCHED_PATH_PREFIXES = ("/conversations", "/contacts")
EXTRA_PATCHED_PATHS = ("/me", "/admins", "/tags")
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def spec_path() -> Path:
    """Where the 2.16 description lives (env override for other checkouts)."""
    return Path(os.environ.get(SPEC_ENV_VAR, str(DEFAULT_SPEC_PATH)))


def _load_raw_spec(path: Path) -> dict[str, Any]:
    """Parse the YAML, caching the parsed dict as JSON keyed by the file's sha256 (YAML is slow)."""
    data = path.read_bytes()
    if path.suffix == ".json":  # JSON parses fast; nothing to cache
        return json.loads(data)
    digest = hashlib.sha256(data).hexdigest()
    cached = CACHE_DIR / f"intercom-spec-{digest[:16]}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(data, Loader=loader)
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(spec))
        tmp.replace(cached)
    except OSError:  # a read-only cache dir only costs speed
        logger.debug("could not cache parsed spec in %s", CACHE_DIR)
    return spec


def _walk(node: Any):
    """Yield every dict in a JSON tree."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            yield cur
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


def patch_spec(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a patched deep copy of the published description (see module docstring)."""
    spec = copy.deepcopy(dict(raw))
    paths: dict[str, Any] = spec["paths"]
    for broken in BROKEN_PATHS:
        paths.pop(broken, None)

    schemas: dict[str, Any] = spec["components"]["schemas"]
    prefix = "#/components/schemas/"
    for node in list(_walk(spec)):
        ref = node.get("$ref")
        if isinstance(ref, str) and node.get("nullable") is True and ref.startswith(prefix):
            target = schemas.get(ref[len(prefix) :])
            if target is not None:
                target["nullable"] = True

    error_response = {
        "description": "Error (patched in: Intercom answers it, the published file omits it)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}},
    }
    for path_name, item in paths.items():
        if not (path_name.startswith(PATCHED_PATH_PREFIXES) or path_name in EXTRA_PATCHED_PATHS):
            continue
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            statuses = NOTES_UNDECLARED_STATUSES + EXTRA_UNDECLARED_STATUSES
            for status in statuses:
                responses.setdefault(status, copy.deepcopy(error_response))
    return spec


@dataclass(frozen=True)
class SpecProfile:
    """One vendor description: where the file is, which host it describes, how it is patched."""

    name: str
    path: Callable[[], Path]
    host_url: str
    patch: Callable[[Mapping[str, Any]], dict[str, Any]]


INTERCOM = SpecProfile(name="intercom", path=spec_path, host_url=SPEC_HOST_URL, patch=patch_spec)

_openapi_lock = threading.Lock()
_profiles: dict[str, SpecProfile] = {INTERCOM.name: INTERCOM}


@functools.lru_cache(maxsize=8)
def _openapi_for(profile_name: str, path_str: str) -> OpenAPI:
    raw = _load_raw_spec(Path(path_str))
    return OpenAPI.from_dict(_profiles[profile_name].patch(raw))


def load_openapi(path: Path | None = None, profile: SpecProfile = INTERCOM) -> OpenAPI:
    """The patched spec as an openapi-core `OpenAPI`, built once per process (it takes seconds)."""
    with _openapi_lock:
        _profiles.setdefault(profile.name, profile)
        return _openapi_for(profile.name, str(path or profile.path()))


@dataclass
class CapturedRequest:
    """One HTTP request in the shape openapi-core's `Request` protocol expects."""

    method_name: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body_bytes: bytes | None
    host_url: str = SPEC_HOST_URL
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(self.query_string, keep_blank_values=True)),
            header=Headers(list(self.headers.items())),
        )

    @property
    def method(self) -> str:
        return self.method_name.lower()

    @property
    def body(self) -> bytes | None:
        return self.body_bytes or None

    @property
    def content_type(self) -> str:
        for key, value in self.headers.items():
            if key.lower() == "content-type":
                return value.lower()
        return "application/octet-stream"


@dataclass
class CapturedResponse:
    """One HTTP response in the shape openapi-core's `Response` protocol expects."""

    status_code: int
    headers: Mapping[str, str]
    data: bytes | None

    @property
    def content_type(self) -> str:
        for key, value in self.headers.items():
            if key.lower() == "content-type":
                return value.lower()
        return "application/octet-stream"


@dataclass(frozen=True)
class Violation:
    """One contract violation: which exchange, which side, what openapi-core said."""

    method: str
    path: str
    status: int | None
    side: str  # "request" or "response"
    error: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.side}: {self.error}"


def _describe(exc: BaseException) -> str:
    """openapi-core wraps schema errors; include the inner causes (they say which field)."""
    parts = [f"{type(exc).__name__}: {exc}"]
    for inner in getattr(exc, "schema_errors", None) or []:
        parts.append(f"  - {getattr(inner, 'message', inner)} at {list(getattr(inner, 'absolute_path', []))}")
    cause = exc.__cause__
    if cause is not None:
        parts.append(f"  cause {type(cause).__name__}: {cause}")
        for inner in getattr(cause, "schema_errors", None) or []:
            parts.append(f"  - {getattr(inner, 'message', inner)} at {list(getattr(inner, 'absolute_path', []))}")
    return "\n".join(parts)[:4000]


ExtraCheck = Callable[["CapturedRequest", "CapturedResponse"], list[tuple[str, str]]]
"""A further check of one exchange: returns (side, error) pairs, empty when it passes."""


class ContractValidator:
    """Checks exchanges against the patched spec and keeps every violation (thread-safe).

    `host_url` is the server the requests are validated as sent to (the spec's server);
    `extra_checks` run on every exchange after the OpenAPI checks.
    """

    def __init__(
        self,
        openapi: OpenAPI | None = None,
        *,
        host_url: str = SPEC_HOST_URL,
        name: str = "intercom",
        extra_checks: Sequence[ExtraCheck] = (),
    ) -> None:
        self.openapi = openapi or load_openapi()
        self.host_url = host_url
        self.name = name
        self.extra_checks = tuple(extra_checks)
        self.violations: list[Violation] = []
        self.exchanges = 0
        self._lock = threading.Lock()

    @classmethod
    def for_profile(cls, profile: SpecProfile, extra_checks: Sequence[ExtraCheck] = ()) -> ContractValidator:
        """A validator of `profile`'s patched description, validating requests as sent to its host."""
        return cls(
            load_openapi(profile=profile), host_url=profile.host_url, name=profile.name, extra_checks=extra_checks
        )

    def check(self, request: CapturedRequest, response: CapturedResponse) -> list[Violation]:
        """Validate one exchange; return (and record) its violations."""
        found: list[Violation] = []
        try:
            self.openapi.validate_request(request)
        except Exception as exc:  # openapi-core raises several unrelated exception types
            found.append(Violation(request.method, request.path, response.status_code, "request", _describe(exc)))
        try:
            self.openapi.validate_response(request, response)
        except Exception as exc:
            found.append(Violation(request.method, request.path, response.status_code, "response", _describe(exc)))
        for extra in self.extra_checks:
            for side, error in extra(request, response):
                found.append(Violation(request.method, request.path, response.status_code, side, error))
        with self._lock:
            self.exchanges += 1
            self.violations.extend(found)
        return found


class ContractCheckingMiddleware:
    """ASGI middleware: validate every request/response pair that crosses the wrapped app.

    Bodies are buffered (the stand-in answers small JSON documents), so it suits the stand-in
    and tests, not production traffic.
    """

    def __init__(self, app: Any, validator: ContractValidator) -> None:
        self.app = app
        self.validator = validator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
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
        resp_headers: list[tuple[bytes, bytes]] = []
        resp_body: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                resp_headers.extend(message.get("headers", []))
            elif message["type"] == "http.response.body":
                resp_body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request = CapturedRequest(
            method_name=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body_bytes=body,
            host_url=self.validator.host_url,
        )
        response = CapturedResponse(
            status_code=status[0] if status else 0,
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in resp_headers},
            data=b"".join(resp_body),
        )
        for violation in self.validator.check(request, response):
            logger.warning("contract violation: %s", violation)

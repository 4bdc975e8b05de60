"""Stand-in of the GitHub REST API, issues subset (api.github.com.issues.json), as a Starlette app.

Routes (the operations listed in ../shared/specs/github/NOTES.md): `GET /repos/{owner}/{repo}`,
`GET /user`, `GET /rate_limit`, `GET|POST /repos/{o}/{r}/issues`, `GET|PATCH /repos/{o}/{r}/issues/{n}`,
`GET|POST /repos/{o}/{r}/issues/{n}/comments`, `PATCH /repos/{o}/{r}/issues/comments/{id}`,
`GET|POST /repos/{o}/{r}/labels`, `POST /repos/{o}/{r}/issues/{n}/labels`, `GET /search/issues`.
Any Host works, so a client points at it through its base URL as at GitHub Enterprise Server.

Behaviour and the GitHub documentation it follows:

- Authentication ("Authenticating to the REST API"): `Authorization: Bearer <token>` or
  `token <token>`; anything else is 401 `{"message": "Bad credentials", "documentation_url": ...,
  "status": "401"}`.
- Pagination ("Using pagination in the REST API"): `per_page` (default 30, at most 100) and `page`;
  a `Link` header with `rel="next"`, `"last"`, `"first"`, `"prev"` as applicable.
- Primary rate limit ("Rate limits for the REST API"): 5,000 requests per hour for a user token
  (resource `core`) and 30 per minute for search (resource `search`), fixed windows; every
  response carries `x-ratelimit-limit`, `-remaining`, `-reset` (Unix seconds), `-used`,
  `-resource`; when exhausted the answer is 403 (or 429, `primary_limit_status`) with remaining 0
  and the message "API rate limit exceeded ...".
- Secondary rate limit (same page): no more than 80 content-generating requests per minute and
  no more than 500 per hour. Here every POST that creates content (issue, comment, label) counts,
  in sliding windows; when exceeded the answer is 403 (or 429, `secondary_limit_status`) with
  `retry-after` (seconds) and the message "You have exceeded a secondary rate limit ...".
- Search ("Searching issues and pull requests"): `q` with `repo:owner/name`, `is:issue|open|closed`,
  `state:open|closed`, `type:issue`, `label:NAME`, `in:body|title|comments`, quoted phrases and
  bare words (every term must occur, case-insensitive). A hidden HTML comment in the body is
  searchable text, which is how an exporter finds an issue again by its marker. GitHub's index
  lags writes; `search_lag_seconds` reproduces that (0 by default).
- Issues: PATCH accepts `state` (`open`/`closed`) and `state_reason` (`completed`, `not_planned`,
  `duplicate`, `reopened`), setting `closed_at`/`closed_by`; labels named on create are created
  on the fly (GitHub does so for users with push access).

Scaling: `time_scale` multiplies every window (1.0 = GitHub; 0.01 makes the hour 36 s and the
minute 0.6 s while keeping 80 and 500 creations per window), see `trackers.common`.

Fault injection (`Faults`): a share of 5xx answers, a share of injected 429s (secondary-limit
style, with `retry-after`), delays; `after_create` runs after an issue is created and before
the answer leaves (crash tests kill the exporter there). Hooks for tests: `GitHubWorld.close_as_person(...)` and
`GitHubWorld.edit_body_as_person(...)` act as a person would in the web UI.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from threadline_testing.trackers.common import Faults, FixedWindow, SlidingWindow, TrafficStats

DOCS_URL = "https://docs.github.com/rest"
PRIMARY_LIMIT_PER_HOUR = 5_000  # requests per hour for a personal access token (resource core)
SEARCH_LIMIT_PER_MINUTE = 30  # authenticated search requests per minute (resource search)
SECONDARY_CREATES_PER_MINUTE = 80  # content-generating requests per minute (secondary limit)
SECONDARY_CREATES_PER_HOUR = 500  # content-generating requests per hour (secondary limit)
HOUR_SECONDS = 3_600.0
MINUTE_SECONDS = 60.0
DEFAULT_PER_PAGE = 30  # GitHub's default page size
MAX_PER_PAGE = 100  # GitHub's maximum page size
SEARCH_TERMS = re.compile(r'(\S+:"[^"]*"|"[^"]*"|\S+)')  # qualifiers, quoted phrases, bare words
PRIMARY_MESSAGE = "API rate limit exceeded for user ID 1."
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    author: str
    labels: list[str]
    created_at: float
    updated_at: float
    state: str = "open"
    state_reason: str | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    comment_ids: list[int] = field(default_factory=list)


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    author: str
    created_at: float
    updated_at: float


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


class GitHubWorld:
    """One repository's data; tests read it and act on it as people would."""

    def __init__(self, owner: str = "acme", repo: str = "widgets", clock: Callable[[], float] = time.time) -> None:
        self.owner, self.repo = owner, repo
        self.clock = clock
        self.lock = threading.RLock()
        self.issues: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.labels: dict[str, Label] = {}
        self._next_id = 1_000

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def label(self, name: str) -> Label:
        with self.lock:
            found = self.labels.get(name.lower())
            if found is None:
                found = self.labels[name.lower()] = Label(id=self.new_id(), name=name)
            return found

    def create_issue(self, title: str, body: str | None, author: str, labels: list[str] | None = None) -> Issue:
        with self.lock:
            now = self.clock()
            issue = Issue(
                number=len(self.issues) + 1,
                id=self.new_id(),
                title=title,
                body=body,
                author=author,
                labels=[self.label(n).name for n in labels or []],
                created_at=now,
                updated_at=now,
            )
            self.issues[issue.number] = issue
            return issue

    def add_comment(self, number: int, body: str, author: str) -> Comment:
        with self.lock:
            now = self.clock()
            comment = Comment(self.new_id(), number, body, author, now, now)
            self.comments[comment.id] = comment
            self.issues[number].comment_ids.append(comment.id)
            self.issues[number].updated_at = now
            return comment

    def set_state(self, number: int, state: str, reason: str | None, by: str) -> None:
        with self.lock:
            issue = self.issues[number]
            now = self.clock()
            if state == "closed" and issue.state != "closed":
                issue.closed_at, issue.closed_by = now, by
                issue.state_reason = reason or "completed"
            elif state == "open" and issue.state != "open":
                issue.closed_at, issue.closed_by = None, None
                issue.state_reason = "reopened"
            elif reason is not None:
                issue.state_reason = reason
            issue.state = state
            issue.updated_at = now

    def close_as_person(self, number: int, reason: str = "completed", by: str = "a-person") -> None:
        """Close an issue the way someone does in GitHub's UI (test hook)."""
        self.set_state(number, "closed", reason, by)

    def reopen_as_person(self, number: int, by: str = "a-person") -> None:
        """Reopen an issue from the UI (test hook)."""
        self.set_state(number, "open", None, by)

    def edit_body_as_person(self, number: int, edit: Callable[[str], str]) -> None:
        """Rewrite an issue's body the way someone does in the UI (test hook): body = edit(body)."""
        with self.lock:
            issue = self.issues[number]
            issue.body = edit(issue.body or "")
            issue.updated_at = self.clock()

    def comment_as_person(self, number: int, body: str, by: str = "a-person") -> Comment:
        """Comment on an issue from the UI (test hook)."""
        return self.add_comment(number, body, by)


@dataclass
class GitHubConfig:
    """Behaviour of one GitHub stand-in; `tokens` maps each accepted token to its user's login."""

    world: GitHubWorld = field(default_factory=GitHubWorld)
    tokens: dict[str, str] = field(default_factory=lambda: {"gh-standin-token": "threadline-bot"})
    time_scale: float = 1.0
    primary_limit: int = PRIMARY_LIMIT_PER_HOUR
    search_limit: int = SEARCH_LIMIT_PER_MINUTE
    secondary_per_minute: int = SECONDARY_CREATES_PER_MINUTE
    secondary_per_hour: int = SECONDARY_CREATES_PER_HOUR
    primary_limit_status: int = 403  # GitHub answers 403 or 429; both documented
    secondary_limit_status: int = 403
    search_lag_seconds: float = 0.0
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    # test hook: called with the new issue's number after it is created, before the answer is sent
    # (a crash test kills the exporting process here: the item exists, the exporter never hears of it)
    after_create: Callable[[int], None] | None = None


class _Limits:
    def __init__(self, config: GitHubConfig) -> None:
        scale, clock = config.time_scale, config.clock
        self.core = FixedWindow(config.primary_limit, HOUR_SECONDS * scale, clock)
        self.search = FixedWindow(config.search_limit, MINUTE_SECONDS * scale, clock)
        self.per_minute = SlidingWindow(config.secondary_per_minute, MINUTE_SECONDS * scale, clock)
        self.per_hour = SlidingWindow(config.secondary_per_hour, HOUR_SECONDS * scale, clock)
        self.lock = threading.Lock()


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"message": message, "documentation_url": DOCS_URL, "status": str(status), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(config: GitHubConfig | None = None) -> Starlette:
    """The ASGI app; `app.state.world`, `.config` and `.stats` expose its state."""
    config = config or GitHubConfig()
    world = config.world
    stats = TrafficStats()
    limits = _Limits(config)

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def user_json(request: Request, login: str) -> dict[str, Any]:
        u = f"{base(request)}/users/{login}"
        return {
            "login": login,
            "id": zlib.crc32(login.encode()) % 10_000_000,
            "node_id": f"U_{login}",
            "avatar_url": f"{base(request)}/avatars/{login}",
            "gravatar_id": "",
            "url": u,
            "html_url": f"{base(request)}/{login}",
            "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events",
            "type": "User",
            "site_admin": False,
        }

    def repo_api(request: Request) -> str:
        return f"{base(request)}/repos/{world.owner}/{world.repo}"

    def label_json(request: Request, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "node_id": f"LA_{label.id}",
            "url": f"{repo_api(request)}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
        }

    def issue_json(request: Request, issue: Issue) -> dict[str, Any]:
        api = f"{repo_api(request)}/issues/{issue.number}"
        return {
            "id": issue.id,
            "node_id": f"I_{issue.id}",
            "url": api,
            "repository_url": repo_api(request),
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{base(request)}/{world.owner}/{world.repo}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": user_json(request, issue.author),
            "labels": [label_json(request, world.label(n)) for n in issue.labels],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(issue.comment_ids),
            "closed_at": _iso(issue.closed_at) if issue.closed_at else None,
            "closed_by": user_json(request, issue.closed_by) if issue.closed_by else None,
            "created_at": _iso(issue.created_at),
            "updated_at": _iso(issue.updated_at),
            "author_association": "MEMBER",
        }

    def comment_json(request: Request, comment: Comment) -> dict[str, Any]:
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": f"{repo_api(request)}/issues/comments/{comment.id}",
            "html_url": f"{base(request)}/{world.owner}/{world.repo}/issues/{comment.issue_number}"
            f"#issuecomment-{comment.id}",
            "issue_url": f"{repo_api(request)}/issues/{comment.issue_number}",
            "body": comment.body,
            "user": user_json(request, comment.author),
            "created_at": _iso(comment.created_at),
            "updated_at": _iso(comment.updated_at),
            "author_association": "MEMBER",
        }

    def paginate(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]] | Response:
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(request.query_params.get("per_page", DEFAULT_PER_PAGE))))
            page = max(1, int(request.query_params.get("page", 1)))
        except ValueError:
            return _error(422, "Validation Failed")
        last = max(1, -(-len(items) // per_page))
        links = []

        def url(p: int) -> str:
            query = dict(request.query_params)
            query.update({"per_page": str(per_page), "page": str(p)})
            return f"{base(request)}{request.url.path}?{urlencode(query)}"

        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    async def gate(request: Request, route: str, creates: bool = False) -> tuple[Response | None, dict, str]:
        """Auth, primary and secondary limits, injected faults; returns (early answer, headers, login)."""
        stats.requests += 1
        stats.by_route[route] += 1
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        login = config.tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if login is None:
            stats.unauthorized += 1
            return _error(401, "Bad credentials"), {}, ""
        resource = "search" if route == "search" else "core"
        window = limits.search if resource == "search" else limits.core
        admitted, used, reset = window.take()
        headers = {
            "x-ratelimit-limit": str(window.limit),
            "x-ratelimit-remaining": str(max(0, window.limit - used)),
            "x-ratelimit-reset": str(int(reset)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": resource,
        }
        if not admitted:
            stats.primary_limited += 1
            headers["x-ratelimit-remaining"] = "0"
            return _error(config.primary_limit_status, PRIMARY_MESSAGE, headers), headers, login
        fault = await config.faults.roll()
        if fault == "5xx":
            stats.injected_5xx += 1
            return _error(503, "Service Unavailable", headers), headers, login
        if fault == "429":
            stats.injected_429 += 1
            retry = {**headers, "retry-after": str(config.faults.retry_after_seconds)}
            return _error(429, SECONDARY_MESSAGE, retry), headers, login
        if creates:
            with limits.lock:
                wait = max(limits.per_minute.wait_needed(), limits.per_hour.wait_needed())
                if wait <= 0:
                    limits.per_minute.record()
                    limits.per_hour.record()
            if wait > 0:
                stats.secondary_limited += 1
                retry = {**headers, "retry-after": str(max(1, int(wait + 0.999)))}
                return _error(config.secondary_limit_status, SECONDARY_MESSAGE, retry), headers, login
        return None, headers, login

    def finish(response: Response) -> Response:
        stats.by_status[response.status_code] += 1
        return response

    def reply(body: Any, headers: dict[str, str], status: int = 200) -> Response:
        return finish(JSONResponse(body, status_code=status, headers=headers))

    def repo_matches(request: Request) -> bool:
        return (request.path_params["owner"], request.path_params["repo"]) == (world.owner, world.repo)

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def validation_failed(headers: dict[str, str], resource: str, field_name: str, code: str) -> Response:
        return finish(
            _error(
                422, "Validation Failed", headers, errors=[{"resource": resource, "field": field_name, "code": code}]
            )
        )

    async def get_repo(request: Request) -> Response:
        early, headers, _ = await gate(request, "repo")
        if early is not None:
            return finish(early)
        if not repo_matches(request):
            return finish(_error(404, "Not Found", headers))
        return reply(repo_json(request), headers)

    def repo_json(request: Request) -> dict[str, Any]:
        api = repo_api(request)
        html = f"{base(request)}/{world.owner}/{world.repo}"
        templated = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "statuses_url": "/statuses/{sha}",
            "trees_url": "/git/trees{/sha}",
        }
        plain = (
            "contributors",
            "deployments",
            "downloads",
            "events",
            "forks",
            "hooks",
            "languages",
            "merges",
            "stargazers",
            "subscribers",
            "subscription",
            "tags",
            "teams",
        )
        open_count = sum(1 for i in world.issues.values() if i.state == "open")
        return {
            "id": 1296269,
            "node_id": "R_standin",
            "name": world.repo,
            "full_name": f"{world.owner}/{world.repo}",
            "owner": user_json(request, world.owner),
            "private": True,
            "html_url": html,
            "description": None,
            "fork": False,
            "url": api,
            **{k: api + v for k, v in templated.items()},
            **{f"{k}_url": f"{api}/{k}" for k in plain},
            "git_url": f"git://standin/{world.owner}/{world.repo}.git",
            "ssh_url": f"git@standin:{world.owner}/{world.repo}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "watchers": 0,
            "size": 0,
            "default_branch": "main",
            "open_issues": open_count,
            "open_issues_count": open_count,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": _iso(0),
            "created_at": _iso(0),
            "updated_at": _iso(0),
            "network_count": 0,
            "subscribers_count": 0,
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
        }

    async def get_user(request: Request) -> Response:
        early, headers, login = await gate(request, "user")
        if early is not None:
            return finish(early)
        body = {
            **user_json(request, login),
            "user_view_type": "private",
            "name": None,
            "company": None,
            "blog": None,
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": _iso(0),
            "updated_at": _iso(0),
            "private_gists": 0,
            "total_private_repos": 1,
            "owned_private_repos": 0,
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
        }
        return reply(body, headers)

    async def rate_limit(request: Request) -> Response:
        # GitHub: calling /rate_limit does not count against the primary limit.
        stats.requests += 1
        stats.by_route["rate_limit"] += 1
        auth = request.headers.get("authorization", "")
        if config.tokens.get(auth.partition(" ")[2].strip()) is None:
            stats.unauthorized += 1
            return finish(_error(401, "Bad credentials"))

        def state(window: FixedWindow) -> dict[str, int]:
            used, reset = window.peek()
            return {"limit": window.limit, "used": used, "remaining": max(0, window.limit - used), "reset": int(reset)}

        core, search = state(limits.core), state(limits.search)
        return reply({"resources": {"core": core, "search": search}, "rate": core}, {})

    async def list_issues(request: Request) -> Response:
        early, headers, _ = await gate(request, "issues.list")
        if early is not None:
            return finish(early)
        if not repo_matches(request):
            return finish(_error(404, "Not Found", headers))
        wanted = request.query_params.get("state", "open")
        with world.lock:
            items = [i for i in world.issues.values() if wanted == "all" or i.state == wanted]
            items.sort(key=lambda i: (i.created_at, i.number), reverse=request.query_params.get("direction") != "asc")
            page = paginate(request, items)
            if isinstance(page, Response):
                return finish(page)
            chunk, link = page
            return reply([issue_json(request, i) for i in chunk], {**headers, **link})

    async def create_issue(request: Request) -> Response:
        early, headers, login = await gate(request, "issues.create", creates=True)
        if early is not None:
            return finish(early)
        if not repo_matches(request):
            return finish(_error(404, "Not Found", headers))
        body = await json_body(request)
        if body is None:
            return finish(_error(400, "Problems parsing JSON", headers))
        title = body.get("title")
        if title in (None, ""):
            return validation_failed(headers, "Issue", "title", "missing_field")
        labels = [lab if isinstance(lab, str) else lab.get("name", "") for lab in body.get("labels") or []]
        issue = world.create_issue(str(title), body.get("body"), login, [n for n in labels if n])
        stats.created += 1
        stats.created_at.append(config.clock())
        if config.after_create is not None:
            config.after_create(issue.number)
        location = f"{repo_api(request)}/issues/{issue.number}"
        return reply(issue_json(request, issue), {**headers, "Location": location}, 201)

    def find_issue(request: Request) -> Issue | None:
        if not repo_matches(request):
            return None
        try:
            return world.issues.get(int(request.path_params["number"]))
        except ValueError:
            return None

    async def get_issue(request: Request) -> Response:
        early, headers, _ = await gate(request, "issues.get")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = find_issue(request)
            if issue is None:
                return finish(_error(404, "Not Found", headers))
            return reply(issue_json(request, issue), headers)

    async def update_issue(request: Request) -> Response:
        early, headers, login = await gate(request, "issues.update")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None:
            return finish(_error(400, "Problems parsing JSON", headers))
        with world.lock:
            issue = find_issue(request)
            if issue is None:
                return finish(_error(404, "Not Found", headers))
            if "title" in body:
                if body["title"] in (None, ""):
                    return validation_failed(headers, "Issue", "title", "missing_field")
                issue.title = str(body["title"])
            if "body" in body:
                issue.body = body["body"]
            if "labels" in body:
                names = [lab if isinstance(lab, str) else lab.get("name", "") for lab in body["labels"] or []]
                issue.labels = [world.label(n).name for n in names if n]
            state = body.get("state")
            if state is not None and state not in ("open", "closed"):
                return validation_failed(headers, "Issue", "state", "invalid")
            if state is not None or body.get("state_reason") is not None:
                world.set_state(issue.number, state or issue.state, body.get("state_reason"), login)
            issue.updated_at = config.clock()
            return reply(issue_json(request, issue), headers)

    async def list_comments(request: Request) -> Response:
        early, headers, _ = await gate(request, "comments.list")
        if early is not None:
            return finish(early)
        with world.lock:
            issue = find_issue(request)
            if issue is None:
                return finish(_error(404, "Not Found", headers))
            page = paginate(request, [world.comments[c] for c in issue.comment_ids])
            if isinstance(page, Response):
                return finish(page)
            chunk, link = page
            return reply([comment_json(request, c) for c in chunk], {**headers, **link})

    async def create_comment(request: Request) -> Response:
        early, headers, login = await gate(request, "comments.create", creates=True)
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None:
            return finish(_error(400, "Problems parsing JSON", headers))
        with world.lock:
            issue = find_issue(request)
            if issue is None:
                return finish(_error(404, "Not Found", headers))
            if not body.get("body"):
                return validation_failed(headers, "IssueComment", "body", "missing_field")
            comment = world.add_comment(issue.number, str(body["body"]), login)
        stats.created += 1
        stats.created_at.append(config.clock())
        return reply(
            comment_json(request, comment), {**headers, "Location": comment_json(request, comment)["url"]}, 201
        )

    async def update_comment(request: Request) -> Response:
        early, headers, _ = await gate(request, "comments.update")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None:
            return finish(_error(400, "Problems parsing JSON", headers))
        with world.lock:
            try:
                comment = world.comments.get(int(request.path_params["comment_id"]))
            except ValueError:
                comment = None
            if comment is None or not repo_matches(request):
                return finish(_error(404, "Not Found", headers))
            if not body.get("body"):
                return validation_failed(headers, "IssueComment", "body", "missing_field")
            comment.body = str(body["body"])
            comment.updated_at = config.clock()
            return reply(comment_json(request, comment), headers)

    async def list_labels(request: Request) -> Response:
        early, headers, _ = await gate(request, "labels.list")
        if early is not None:
            return finish(early)
        if not repo_matches(request):
            return finish(_error(404, "Not Found", headers))
        with world.lock:
            page = paginate(request, sorted(world.labels.values(), key=lambda lab: lab.name.lower()))
            if isinstance(page, Response):
                return finish(page)
            chunk, link = page
            return reply([label_json(request, lab) for lab in chunk], {**headers, **link})

    async def create_label(request: Request) -> Response:
        early, headers, _ = await gate(request, "labels.create", creates=True)
        if early is not None:
            return finish(early)
        body = await json_body(request)
        if body is None or not repo_matches(request):
            return finish(_error(404, "Not Found", headers))
        name = body.get("name")
        if not name:
            return validation_failed(headers, "Label", "name", "missing_field")
        with world.lock:
            if name.lower() in world.labels:
                return validation_failed(headers, "Label", "name", "already_exists")
            label = world.label(name)
            label.color = body.get("color") or label.color
            label.description = body.get("description")
        stats.created += 1
        return reply(label_json(request, label), headers, 201)

    async def add_labels(request: Request) -> Response:
        early, headers, _ = await gate(request, "labels.add")
        if early is not None:
            return finish(early)
        body = await json_body(request)
        with world.lock:
            issue = find_issue(request)
            if issue is None:
                return finish(_error(404, "Not Found", headers))
            names = (body or {}).get("labels") or []
            for name in names:
                name = name if isinstance(name, str) else name.get("name", "")
                if name and world.label(name).name not in issue.labels:
                    issue.labels.append(world.label(name).name)
            issue.updated_at = config.clock()
            return reply([label_json(request, world.label(n)) for n in issue.labels], headers)

    def search_predicate(q: str) -> tuple[Callable[[Issue], bool], str | None]:
        """Compile GitHub's issue search syntax (the subset in the module docstring)."""
        repo: str | None = None
        where: set[str] = set()
        checks: list[Callable[[Issue], bool]] = []
        terms: list[str] = []
        for token in SEARCH_TERMS.findall(q):
            key, sep, value = token.partition(":")
            value = value.strip('"')
            if token.startswith('"'):
                terms.append(token.strip('"').lower())
            elif sep and key == "repo":
                repo = value
            elif sep and key == "in":
                where.update(value.split(","))
            elif sep and key in ("is", "state", "type") and value in ("open", "closed"):
                checks.append(lambda i, v=value: i.state == v)
            elif sep and key in ("is", "type") and value in ("issue", "issues"):
                continue
            elif sep and key == "is" and value in ("pr", "pull-request"):
                checks.append(lambda i: False)
            elif sep and key == "label":
                checks.append(lambda i, v=value.lower(): v in (n.lower() for n in i.labels))
            else:
                terms.append(token.lower())
        where = where or {"title", "body"}

        def text(issue: Issue) -> str:
            parts = []
            if "title" in where:
                parts.append(issue.title)
            if "body" in where:
                parts.append(issue.body or "")
            if "comments" in where:
                parts.extend(world.comments[c].body for c in issue.comment_ids)
            return "\n".join(parts).lower()

        def matches(issue: Issue) -> bool:
            if not all(check(issue) for check in checks):
                return False
            haystack = text(issue)
            return all(term in haystack for term in terms)

        return matches, repo

    async def search_issues(request: Request) -> Response:
        early, headers, _ = await gate(request, "search")
        if early is not None:
            return finish(early)
        q = request.query_params.get("q", "")
        if not q.strip():
            return validation_failed(headers, "Search", "q", "missing")
        predicate, repo = search_predicate(q)
        if repo is not None and repo.lower() != f"{world.owner}/{world.repo}".lower():
            return reply(
                {"total_count": 0, "incomplete_results": False, "items": [], "search_type": "lexical"}, headers
            )
        indexed_before = config.clock() - config.search_lag_seconds
        with world.lock:
            found = [i for i in world.issues.values() if i.created_at <= indexed_before and predicate(i)]
            found.sort(key=lambda i: i.number, reverse=True)
            page = paginate(request, found)
            if isinstance(page, Response):
                return finish(page)
            chunk, link = page
            items = [{**issue_json(request, i), "score": 1.0} for i in chunk]
        body = {"total_count": len(found), "incomplete_results": False, "items": items, "search_type": "lexical"}
        return reply(body, {**headers, **link})

    repo = "/repos/{owner}/{repo}"
    app = Starlette(
        routes=[
            Route(repo, get_repo, methods=["GET"]),
            Route("/user", get_user, methods=["GET"]),
            Route("/rate_limit", rate_limit, methods=["GET"]),
            Route(f"{repo}/issues", list_issues, methods=["GET"]),
            Route(f"{repo}/issues", create_issue, methods=["POST"]),
            Route(f"{repo}/issues/comments/{{comment_id}}", update_comment, methods=["PATCH"]),
            Route(f"{repo}/issues/{{number}}", get_issue, methods=["GET"]),
            Route(f"{repo}/issues/{{number}}", update_issue, methods=["PATCH"]),
            Route(f"{repo}/issues/{{number}}/comments", list_comments, methods=["GET"]),
            Route(f"{repo}/issues/{{number}}/comments", create_comment, methods=["POST"]),
            Route(f"{repo}/issues/{{number}}/labels", add_labels, methods=["POST"]),
            Route(f"{repo}/labels", list_labels, methods=["GET"]),
            Route(f"{repo}/labels", create_label, methods=["POST"]),
            Route("/search/issues", search_issues, methods=["GET"]),
        ]
    )
    app.state.world = world
    app.state.config = config
    app.state.stats = stats
    return app

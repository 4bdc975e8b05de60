"""Schemathesis against the app's own OpenAPI schema: no 5xx, and responses conform to it.

Bounded: a few examples per operation, no shrinking, one cloned database for the lot.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

MAX_EXAMPLES = 8  # generated requests per operation: catches schema drift and 5xx without a long run


SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
def test_api_conforms_to_its_schema(app, token):
    """Every operation, generated inputs: each response is not a 5xx and matches the schema.

    (Operations are iterated by hand: schemathesis' lazy pytest fixture loader does not
    support pytest 9 yet.)
    """
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @SETTINGS
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(headers=headers)

        try:
            check()
        except Exception as exc:  # collect all operations' failures, then fail once with all of them
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 17
    assert not failures, "\n\n".join(failures)


def test_schema_lists_every_resource_with_response_models(authed):
    spec = authed.get("/openapi.json").json()
    paths = set(spec["paths"])
    for path in (
        "/health",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/stop",
        "/api/runs/{run_id}/resume",
        "/api/conversations",
        "/api/conversations/{conversation_id}",
        "/api/themes",
        "/api/themes/{theme_id}/trend",
        "/api/themes/{theme_id}/conversations",
        "/api/stories",
        "/api/stories/{story_id}",
        "/api/stories/{story_id}/export.md",
        "/api/dead-letters",
        "/api/dead-letters/{dead_letter_id}/retry",
        "/api/sources",
        "/api/sources/{source_id}/sync",
    ):
        assert path in paths, path
    assert not any(p.startswith(("/login", "/stories", "/runs")) for p in paths)  # pages stay out of the API schema
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            ok = next(code for code in operation["responses"] if code.startswith("2"))
            assert operation["responses"][ok].get("content"), f"{method} {path} has no response model"

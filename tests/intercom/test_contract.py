"""The contract layer itself: the patches do what NOTES.md says, and violations are caught."""

from __future__ import annotations

import json

from openapi_core import OpenAPI
from threadline_testing.contract import (
    BROKEN_PATHS,
    CapturedRequest,
    CapturedResponse,
    ContractValidator,
    _load_raw_spec,
    _walk,
    load_openapi,
    patch_spec,
    spec_path,
)

HEADERS = {"Authorization": "Bearer x", "Intercom-Version": "2.16"}
JSON = {"Content-Type": "application/json"}


def _conversation(**extra) -> bytes:
    body = {"type": "conversation", "id": "1", "created_at": 1, "updated_at": 2, "company": None, "ai_agent": None}
    body.update(extra)
    return json.dumps(body).encode()


def test_patches_fix_the_published_defects() -> None:
    raw = _load_raw_spec(spec_path())
    patched = patch_spec(raw)
    for path in BROKEN_PATHS:
        assert path in raw["paths"] and path not in patched["paths"]
    nullable_refs = [n["$ref"] for n in _walk(raw) if isinstance(n.get("$ref"), str) and n.get("nullable") is True]
    assert len(nullable_refs) == 17  # the count NOTES.md gives
    for ref in nullable_refs:
        assert patched["components"]["schemas"][ref.rsplit("/", 1)[-1]]["nullable"] is True
    assert not raw["components"]["schemas"]["company"].get("nullable")
    assert patched["components"]["schemas"]["company"]["nullable"] is True
    responses = patched["paths"]["/conversations/search"]["post"]["responses"]
    assert {"400", "429"} <= set(responses)
    assert "429" not in raw["paths"]["/conversations/search"]["post"]["responses"]
    assert "429" not in patched["paths"]["/help_center/collections"]["get"]["responses"]  # only where NOTES.md says


def test_unpatched_spec_rejects_real_nulls_and_patched_accepts_them() -> None:
    """Proves the nullable patch is needed: Intercom sends `company: null`."""
    raw = _load_raw_spec(spec_path())
    raw = {**raw, "paths": {k: v for k, v in raw["paths"].items() if k not in BROKEN_PATHS}}
    unpatched = ContractValidator(OpenAPI.from_dict(raw))
    patched = ContractValidator(load_openapi())
    request = CapturedRequest("GET", "/conversations/1", "display_as=plaintext", HEADERS, b"")
    response = CapturedResponse(200, JSON, _conversation())
    assert unpatched.check(request, response)
    assert not patched.check(request, response)


def test_violations_are_reported() -> None:
    """A wrong type in a response and an undeclared query value are both caught."""
    validator = ContractValidator(load_openapi())
    bad_response = validator.check(
        CapturedRequest("GET", "/conversations/1", "", HEADERS, b""),
        CapturedResponse(200, JSON, _conversation(id=1)),
    )
    assert [v.side for v in bad_response] == ["response"]
    bad_request = validator.check(
        CapturedRequest("GET", "/conversations/deleted", "per_page=150", HEADERS, b""),
        CapturedResponse(200, JSON, b'{"type": "conversation.list", "conversations": []}'),
    )
    assert [v.side for v in bad_request] == ["request"]
    mixed_group = json.dumps(
        {
            "query": {
                "operator": "AND",
                "value": [
                    {"operator": "OR", "value": [{"field": "updated_at", "operator": ">", "value": 1}]},
                    {"field": "updated_at", "operator": "<", "value": 2},
                ],
            }
        }
    ).encode()
    found = validator.check(
        CapturedRequest("POST", "/conversations/search", "", {**HEADERS, **JSON}, mixed_group),
        CapturedResponse(200, JSON, b'{"type": "conversation.list", "conversations": []}'),
    )
    assert [v.side for v in found] == ["request"], "a group mixing groups and filters is not in the 2.16 schema"
    assert len(validator.violations) == 3

"""The stand-in itself: auth, determinism, schema-shaped answers, limits, headers."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from llm_helpers import RunningStandin

from threadline.ai.llm.client import response_format
from threadline.ai.llm.facets import conversation_input, facet_messages
from threadline.ai.llm.schemas import FacetsOut


def _body() -> dict[str, object]:
    conv = conversation_input("c1", [("m1", "customer", "My card was declined. Please help.")])
    messages, _ = facet_messages(conv)
    return {
        "model": "m",
        "messages": messages,
        "response_format": response_format(FacetsOut, "json_schema"),
    }


def _post(server: RunningStandin, body: dict[str, object], key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or server.api_key}"}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, headers=headers)


def test_requires_bearer_key(standin: RunningStandin) -> None:
    assert _post(standin, _body(), key="wrong").status_code == 401


def test_answers_are_deterministic_and_follow_the_schema(standin: RunningStandin) -> None:
    first, second = _post(standin, _body()), _post(standin, _body())
    assert first.status_code == second.status_code == 200
    content = first.json()["choices"][0]["message"]["content"]
    assert content == second.json()["choices"][0]["message"]["content"]
    facets = FacetsOut.model_validate_json(content)
    assert facets.quotes[0].text == "My card was declined."
    usage = first.json()["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert first.headers["x-ratelimit-limit-requests"] == "60000"
    assert "x-ratelimit-reset-tokens" in first.headers


def test_enforces_requests_per_minute_with_retry_after(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory(requests_per_minute=60, burst_seconds=3)  # bucket of 3 requests
    statuses = [_post(server, _body()).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    refused = _post(server, _body())
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert json.loads(refused.text)["error"]["type"] == "rate_limit_exceeded"


def test_json_object_mode_uses_schema_name_line(standin: RunningStandin) -> None:
    body = _body()
    body["response_format"] = {"type": "json_object"}
    content = _post(standin, body).json()["choices"][0]["message"]["content"]
    assert FacetsOut.model_validate_json(content).product_area == "cards"


def test_embeddings_are_deterministic_unit_vectors(standin: RunningStandin) -> None:
    headers = {"Authorization": f"Bearer {standin.api_key}"}
    url = f"{standin.base_url}/embeddings"
    one = httpx.post(url, json={"model": "e", "input": ["a", "b"]}, headers=headers).json()
    two = httpx.post(url, json={"model": "e", "input": "a"}, headers=headers).json()
    assert one["data"][0]["embedding"] == two["data"][0]["embedding"]
    assert abs(sum(v * v for v in one["data"][1]["embedding"]) - 1.0) < 1e-9
    assert len(one["data"][0]["embedding"]) == 384

"""OpenAI-compatible stand-in server for tests and benchmarks (never used in production).

It answers `/v1/chat/completions` and `/v1/embeddings` with outputs that are
deterministic functions of the request, enforces requests/tokens per minute with 429s
and `x-ratelimit-*` headers, and injects latency and faults at configured rates. It is
deliberately "gullible": instructions found *outside* the `<..._data>` delimiters of a
prompt are obeyed, so tests can show that Threadline's prompts keep conversation text
inside the delimiters.
"""

from threadline_testing.openai.app import create_app
from threadline_testing.openai.config import StandinConfig

__all__ = ["StandinConfig", "create_app"]

"""The browser fixtures of tests/web (a live uvicorn server, a token, Chromium) for the hostile page tests."""

from web.conftest import browser, live_server, sample_engine, web_token  # noqa: F401

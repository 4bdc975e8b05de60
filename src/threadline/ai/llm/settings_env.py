"""LLM settings from the environment: `THREADLINE_LLM_*`, nested fields with `__`.

The LLM path is opt-in: it is enabled only when `THREADLINE_LLM_BASE_URL` is set *and*
the variable named by `THREADLINE_LLM_API_KEY_ENV` (default `OPENAI_API_KEY`) holds a key.
An `OPENAI_API_KEY` exported for other tools therefore never starts paid calls by itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic_settings import BaseSettings, SettingsConfigDict

from threadline.ai.llm.config import LLMSettings, llm_enabled

BASE_URL_VARIABLE = "THREADLINE_LLM_BASE_URL"


class LLMEnvSettings(LLMSettings, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THREADLINE_LLM_", env_nested_delimiter="__", extra="ignore")


def load_llm_settings(environ: Mapping[str, str] | None = None) -> LLMSettings | None:
    """Configured LLM settings, or None for the offline path."""
    env = os.environ if environ is None else environ
    if not env.get(BASE_URL_VARIABLE):
        return None
    settings = LLMSettings.model_validate(LLMEnvSettings().model_dump()) if environ is None else _from_mapping(env)
    return settings if llm_enabled(settings, env) else None


def _from_mapping(env: Mapping[str, str]) -> LLMSettings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return LLMSettings.model_validate(LLMEnvSettings().model_dump())
    finally:
        os.environ.clear()
        os.environ.update(saved)

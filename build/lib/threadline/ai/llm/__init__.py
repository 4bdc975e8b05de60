"""LLM analysis over any OpenAI-compatible endpoint: facets, theme names, story text.

Entry points: `LLMClient` (one per job; settings are `threadline.config.LLMSettings`),
`analyze_facets` / `analyze_batch`, `name_theme`, `write_story`, `summarize` (cost).
"""

from threadline.ai.llm.batch import BatchReport, FacetCache, analyze_batch
from threadline.ai.llm.client import CallResult, LLMCallFailed, LLMClient
from threadline.ai.llm.cost import BudgetExceeded, CallUsage, CostSummary, check_budget, summarize
from threadline.ai.llm.facets import (
    ConversationInput,
    FacetResult,
    Facets,
    MessageInput,
    analyze_facets,
    facet_input_hash,
)
from threadline.ai.llm.naming import ThemeMember, ThemeNamingInput, name_theme
from threadline.ai.llm.stories import Evidence, StoryInput, write_story
from threadline.config import LLMSettings, ModelPrice, TaskModels, llm_enabled

__all__ = [
    "BatchReport",
    "BudgetExceeded",
    "CallResult",
    "CallUsage",
    "ConversationInput",
    "CostSummary",
    "Evidence",
    "FacetResult",
    "Facets",
    "FacetCache",
    "LLMCallFailed",
    "LLMClient",
    "LLMSettings",
    "MessageInput",
    "ModelPrice",
    "StoryInput",
    "TaskModels",
    "ThemeMember",
    "ThemeNamingInput",
    "analyze_batch",
    "analyze_facets",
    "check_budget",
    "facet_input_hash",
    "llm_enabled",
    "name_theme",
    "summarize",
    "write_story",
]

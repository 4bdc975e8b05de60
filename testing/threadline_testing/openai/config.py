"""Stand-in server settings: budget, latency distribution, fault rates, seed."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BURST_SECONDS = 60.0  # s of budget the provider bucket holds: OpenAI allows a minute's burst
DEFAULT_HANG_SECONDS = 30.0  # s a "hang" fault sleeps: longer than any sane client read timeout
STORY_QUOTATIONS = ("", "verbatim", "invented")  # see StandinConfig.story_quotation
INVENTED_QUOTATION = "We will cancel our contract unless this is fixed, it cost us $50,000."  # in no evidence
DEFAULT_EMBEDDING_DIM = 384  # dimensions: same as all-MiniLM-L6-v2, so vectors fit the same column


@dataclass(frozen=True)
class StandinConfig:
    """Behaviour of one stand-in instance. Rates are probabilities per request (0..1)."""

    api_key: str = "standin-key"
    requests_per_minute: float = 600.0
    tokens_per_minute: float = 200_000.0
    burst_seconds: float = DEFAULT_BURST_SECONDS
    latency_min_seconds: float = 0.0
    latency_max_seconds: float = 0.0
    error_500_rate: float = 0.0
    malformed_json_rate: float = 0.0
    truncated_json_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = DEFAULT_HANG_SECONDS
    fabricated_quote_rate: float = 0.0
    bad_citation_rate: float = 0.0
    # Quotation in every story's problem: "" none, "verbatim" the first evidence quote as sent,
    # "invented" words no customer wrote (the model making up a quote).
    story_quotation: str = ""
    embedding_dim: int = DEFAULT_EMBEDDING_DIM
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (
            self.error_500_rate,
            self.malformed_json_rate,
            self.truncated_json_rate,
            self.hang_rate,
        )
        if any(r < 0 for r in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")
        if self.story_quotation not in STORY_QUOTATIONS:
            raise ValueError(f"story_quotation must be one of {STORY_QUOTATIONS}")
        if self.latency_max_seconds < self.latency_min_seconds:
            raise ValueError("latency_max_seconds must be >= latency_min_seconds")

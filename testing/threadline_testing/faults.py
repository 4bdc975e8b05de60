"""Fault injection for tests and drills: `THREADLINE_FAULTS`, inert when unset.

An item hook of the engine (entry-point group `threadline.item_hooks`), read by every
worker process (no monkeypatching): before a per-conversation stage processes an item, the
injector may raise a `TransientError` or a `PermanentError` for it. The value is JSON, for example::

    THREADLINE_FAULTS='{"stage": "embed", "transient_share": 0.2, "transient_failures": 2,
                        "permanent": [17, 42], "retry_after_s": 0.5, "seed": 1}'

- `stage`: the stage it applies to (other stages are untouched);
- `transient_share`: share of items (chosen by a stable hash of seed and conversation id)
  that fail transiently on their first `transient_failures` attempts, then succeed;
- `permanent`: conversation ids that always fail permanently;
- `retry_after_s`: Retry-After carried by the transient errors (optional).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from threadline.engine.errors import PermanentError, TransientError

FAULTS_ENV = "THREADLINE_FAULTS"


@dataclass(frozen=True)
class FaultInjector:
    stage: str | None = None
    transient_share: float = 0.0
    transient_failures: int = 1
    permanent: frozenset[int] = field(default_factory=frozenset)
    retry_after_s: float | None = None
    seed: int = 0

    @classmethod
    def from_env(cls) -> FaultInjector:
        """The injector configured in THREADLINE_FAULTS (inert when unset or empty)."""
        raw = os.environ.get(FAULTS_ENV, "").strip()
        if not raw:
            return cls()
        spec = json.loads(raw)
        return cls(
            stage=spec.get("stage"),
            transient_share=float(spec.get("transient_share", 0.0)),
            transient_failures=int(spec.get("transient_failures", 1)),
            permanent=frozenset(int(i) for i in spec.get("permanent", [])),
            retry_after_s=spec.get("retry_after_s"),
            seed=int(spec.get("seed", 0)),
        )

    @property
    def active(self) -> bool:
        return self.stage is not None

    def is_transient_item(self, conversation_id: int) -> bool:
        """Whether this item belongs to the transiently failing share (stable across processes)."""
        digest = hashlib.sha256(f"{self.seed}:{conversation_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.transient_share

    def check(self, stage: str, conversation_id: int, attempt: int) -> None:
        """Raise the configured fault for this item's `attempt` (1-based), or return."""
        if stage != self.stage:
            return
        if conversation_id in self.permanent:
            raise PermanentError(f"injected permanent fault for conversation {conversation_id}")
        if attempt <= self.transient_failures and self.is_transient_item(conversation_id):
            raise TransientError(f"injected transient fault (attempt {attempt})", retry_after_s=self.retry_after_s)


def from_env() -> FaultInjector | None:
    """The item hook: the injector configured in THREADLINE_FAULTS, or None when unset."""
    injector = FaultInjector.from_env()
    return injector if injector.active else None

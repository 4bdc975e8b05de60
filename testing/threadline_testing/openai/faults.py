"""Deterministic fault and latency draws for the stand-in.

Each draw is a hash of (seed, request body, how many times this exact body was seen),
so a run is reproducible for a given seed and request order, yet a retried request
(same body, next occurrence) gets a fresh draw instead of failing forever.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from enum import Enum

from threadline_testing.openai.config import StandinConfig

_HASH_SCALE = float(2**64)  # uniform draw denominator: 8 bytes of the digest


class Fault(Enum):
    """What goes wrong with one request (NONE: nothing)."""

    NONE = "none"
    ERROR_500 = "error_500"
    MALFORMED_JSON = "malformed_json"
    TRUNCATED_JSON = "truncated_json"
    HANG = "hang"


@dataclass(frozen=True)
class Draw:
    """Fault and latency chosen for one request."""

    fault: Fault
    latency_seconds: float


class FaultPlan:
    """Draws a fault and a latency per request from the configured rates."""

    def __init__(self, config: StandinConfig) -> None:
        self._config = config
        self._seen: Counter[bytes] = Counter()

    def draw(self, body: bytes) -> Draw:
        """Fault and latency for this request (advances this body's occurrence count)."""
        digest = hashlib.sha256(body).digest()
        occurrence = self._seen[digest]
        self._seen[digest] += 1
        material = hashlib.sha256(
            self._config.seed.to_bytes(8, "big", signed=True) + digest + occurrence.to_bytes(8, "big")
        ).digest()
        fault_u = int.from_bytes(material[:8], "big") / _HASH_SCALE
        latency_u = int.from_bytes(material[8:16], "big") / _HASH_SCALE
        cfg = self._config
        latency = cfg.latency_min_seconds + latency_u * (cfg.latency_max_seconds - cfg.latency_min_seconds)
        threshold = 0.0
        for fault, rate in (
            (Fault.ERROR_500, cfg.error_500_rate),
            (Fault.MALFORMED_JSON, cfg.malformed_json_rate),
            (Fault.TRUNCATED_JSON, cfg.truncated_json_rate),
            (Fault.HANG, cfg.hang_rate),
        ):
            threshold += rate
            if fault_u < threshold:
                return Draw(fault, latency)
        return Draw(Fault.NONE, latency)


def unit_hash(*parts: str) -> float:
    """Deterministic uniform number in [0, 1) from strings (for content decisions)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SCALE

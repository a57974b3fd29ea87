"""Injected trouble, as a real DMP (or the gateway before it) has on a bad day.

Set through `POST /_mock/faults`; draws come from a seeded generator so a test sees the same
sequence every run. `outage_seconds` starts a window during which every call gets 503.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FaultPlan", "FaultSettings", "Injection"]


class FaultSettings(BaseModel):
    """The body of `POST /_mock/faults` (DESIGN §8); every field optional, 0 = off."""

    model_config = ConfigDict(extra="forbid")

    busy_ratio: float = Field(0.0, ge=0, le=1)
    error500_ratio: float = Field(0.0, ge=0, le=1)
    timeout_after_store_ratio: float = Field(0.0, ge=0, le=1)
    latency_ms: int = Field(0, ge=0, le=60_000)
    outage_seconds: float = Field(0.0, ge=0, le=3600)
    seed: int = 0
    stall_seconds: float = Field(30.0, gt=0, le=600)
    """How long a 'timeout after store' holds the answer back (the client gives up first)."""


@dataclass
class Injection:
    """What to do to one call."""

    outage: bool = False
    busy: bool = False
    error500: bool = False
    stall_after_store: bool = False
    latency_s: float = 0.0


@dataclass
class FaultPlan:
    settings: FaultSettings = field(default_factory=FaultSettings)
    _random: random.Random = field(default_factory=lambda: random.Random(0))
    _outage_until: float = 0.0

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._random = random.Random(settings.seed)
        self._outage_until = (
            time.monotonic() + settings.outage_seconds if settings.outage_seconds else 0.0
        )

    def outage_left(self) -> float:
        return max(0.0, self._outage_until - time.monotonic())

    def draw(self) -> Injection:
        s = self.settings
        roll = self._random.random()
        return Injection(
            outage=self.outage_left() > 0,
            busy=roll < s.busy_ratio,
            error500=s.busy_ratio <= roll < s.busy_ratio + s.error500_ratio,
            stall_after_store=self._random.random() < s.timeout_after_store_ratio,
            latency_s=s.latency_ms / 1000,
        )

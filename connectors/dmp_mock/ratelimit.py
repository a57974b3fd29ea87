"""A token bucket per client: over the rate, HTTP 429 with a Retry-After the client can honour.

The real DMP publishes no limit; a gateway in front of it would behave like this (DESIGN §8, a
labelled simplification). One bucket per client key (remote address).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

__all__ = ["TokenBuckets"]


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate or 1.0)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the call may go ahead; otherwise the seconds to wait before trying again."""
        if not self.rate:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.setdefault(client, _Bucket(self.burst, now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        return str(max(1, math.ceil(wait)))

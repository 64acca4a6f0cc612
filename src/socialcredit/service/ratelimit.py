"""A token bucket per client, for the public lookup.

Each client (its address) has a bucket of ``burst`` tokens refilled at ``rate`` per
minute; a lookup takes one. An empty bucket answers how many seconds until the next token,
which the API sends as ``Retry-After``. The buckets live in the server's memory: a restart
forgets them, and several server processes each keep their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]

_MAX_CLIENTS = 100_000


class RateLimiter:
    """``rate`` requests per minute per client, with bursts of up to ``burst``."""

    def __init__(self, rate: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = rate / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> int:
        """Take a token for ``client``: 0 when granted, else the seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.per_second)
            wait = 0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = max(1, math.ceil((1.0 - tokens) / self.per_second))
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > _MAX_CLIENTS:
                self._buckets.popitem(last=False)
            return wait

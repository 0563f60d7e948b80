"""Token buckets: how fast the operator may call the apiserver, and how many Events one object may post.

`TokenBucket` is client-go's flow control for a client (QPS with a burst): every request through
the operator's API client takes a token, waiting when none is left, so a thousand objects changing
at once queue up in the operator instead of flooding the apiserver. `PerKeyBuckets` is client-go's
event spam filter: each object gets a burst of Events, then one per interval; a flapping object's
extra Events are dropped (and counted), not posted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. Safe to share between threads."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._tokens = float(self.burst)
        self._at = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Takes a token, possibly one not yet earned; returns how long to wait before using it."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self) -> bool:
        """Takes a token only if one is there now."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)


class PerKeyBuckets:
    """A bucket per key, made on first use; full buckets are dropped so memory stays bounded."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[Any, TokenBucket] = {}

    def allow(self, key: Any) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self.clock)
        allowed = bucket.try_take()
        if len(self._buckets) > 10_000:
            self._prune()
        return allowed

    def _prune(self) -> None:
        now = self.clock()
        for key, bucket in list(self._buckets.items()):
            if bucket._tokens + (now - bucket._at) * self.rate >= self.burst:
                del self._buckets[key]


def limit_requests(api_client: Any, bucket: TokenBucket) -> None:
    """Makes every request `api_client` sends (each typed call, list and watch goes through its
    REST client) wait for a token first. The wait blocks the calling thread, as in client-go."""
    rest = api_client.rest_client
    send = rest.request

    def request(*args: Any, **kwargs: Any) -> Any:
        bucket.wait()
        return send(*args, **kwargs)

    rest.request = request

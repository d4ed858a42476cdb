"""Login throttling: after too many failed sign-ins for one username from one address, wait.

Redis holds the counters when REDIS_URL is configured (shared by every worker process); otherwise they
live in this process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque


def _key(username: str, address: str) -> str:
    raw = f"{(username or '').strip().lower()}|{address or '-'}"
    return "mianze:login:" + hashlib.sha256(raw.encode()).hexdigest()[:32]


class MemoryThrottle:
    """Failure timestamps per key, kept in this process."""

    def __init__(self, max_failures: int, window_seconds: int):
        self.max_failures, self.window = max_failures, window_seconds
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt (0: go ahead)."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(_key(username, address), now)
            if len(q) < self.max_failures:
                return 0
            return max(1, int(q[0] + self.window - now))

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(_key(username, address), now).append(now)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop(_key(username, address), None)


class RedisThrottle:
    """The same counters in Redis: one key per username and address, expiring with the window."""

    def __init__(self, url: str, max_failures: int, window_seconds: int, prefix: str = ""):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2)
        self.max_failures, self.window, self.prefix = max_failures, window_seconds, prefix

    def retry_after(self, username: str, address: str) -> int:
        key = self.prefix + _key(username, address)
        count = int(self.redis.get(key) or 0)
        if count < self.max_failures:
            return 0
        return max(1, int(self.redis.ttl(key)))

    def failed(self, username: str, address: str) -> None:
        key = self.prefix + _key(username, address)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.window, nx=True)
        pipe.execute()

    def succeeded(self, username: str, address: str) -> None:
        self.redis.delete(self.prefix + _key(username, address))


def make_throttle(config: dict):
    """The throttle the configuration asks for."""
    max_failures = int(config.get("LOGIN_MAX_FAILURES", 5))
    window = int(config.get("LOGIN_WINDOW_SECONDS", 900))
    if config.get("REDIS_URL"):
        return RedisThrottle(config["REDIS_URL"], max_failures, window, prefix=config.get("LOGIN_THROTTLE_PREFIX", ""))
    return MemoryThrottle(max_failures, window)

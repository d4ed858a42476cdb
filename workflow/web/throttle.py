"""Sign-in throttling: wrong passwords are counted per account and per client address, each in its window.

- per account (`LOGIN_MAX_FAILURES`, 5): after that many wrong passwords for one username, from any
  addresses, the account waits for its window to pass, so spreading guesses over many addresses gains
  nothing;
- per address (`LOGIN_MAX_ADDRESS_FAILURES`, 20): after that many wrong passwords from one address, for any
  accounts, the address waits, so one address can neither spray a password over every account nor lock
  out more than a few of them (20 / 5 = 4 accounts); other addresses still sign in.

An attempt is counted when it starts (`attempt`) and taken back when its password was right
(`succeeded`), so that parallel requests cannot try more passwords than the limit while the first ones
are still being checked. A right password clears its account's failures; an address's failures only
expire (a valid account of one's own does not reset the address).

Redis holds the counters when REDIS_URL is configured (shared by every worker process); without it, and
while Redis does not answer, they live in this process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque

log = logging.getLogger(__name__)


def _keys(username: str, address: str) -> tuple[str, str]:
    """The account's and the address's counter names (hashed: usernames typed at the sign-in form are not
    stored as they were typed)."""
    account = hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:32]
    where = hashlib.sha256((address or "-").encode()).hexdigest()[:32]
    return f"mianze:login:account:{account}", f"mianze:login:address:{where}"


class MemoryThrottle:
    """Attempt timestamps per account and per address, kept in this process."""

    def __init__(self, max_failures: int, max_address_failures: int, window_seconds: int):
        self.limits = (max_failures, max_address_failures)
        self.window = window_seconds
        self._attempts: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque:
        q = self._attempts.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def attempt(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt, or 0: go ahead (the attempt counts until `succeeded`)."""
        now = time.monotonic()
        with self._lock:
            queues = [self._recent(key, now) for key in _keys(username, address)]
            full = [q for q, limit in zip(queues, self.limits, strict=True) if len(q) >= limit]
            if full:
                return max(1, int(max(q[0] for q in full) + self.window - now))
            for q in queues:
                q.append(now)
            return 0

    def succeeded(self, username: str, address: str) -> None:
        """The attempt had the right password: the account starts afresh, the address's count is taken back."""
        account, where = _keys(username, address)
        with self._lock:
            self._attempts.pop(account, None)
            q = self._attempts.get(where)
            if q:
                q.pop()


# Both counters checked and counted in one step, so that attempts in parallel cannot pass the limits.
# KEYS: account, address; ARGV: account limit, address limit, window. Returns 0 or the seconds to wait.
_ATTEMPT = """
local a = tonumber(redis.call('GET', KEYS[1]) or '0')
local b = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = 0
if a >= tonumber(ARGV[1]) then wait = math.max(wait, redis.call('TTL', KEYS[1])) end
if b >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('TTL', KEYS[2])) end
if a >= tonumber(ARGV[1]) or b >= tonumber(ARGV[2]) then return math.max(wait, 1) end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[3]) end
end
return 0
"""
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


class RedisThrottle:
    """The same counters in Redis, each expiring with the window after its first attempt.

    When Redis does not answer, the process's own counters serve instead (and Redis is asked again after
    `RETRY_SECONDS`), so that sign-in keeps working, throttled per process.
    """

    RETRY_SECONDS = 30

    def __init__(self, url: str, max_failures: int, max_address_failures: int, window_seconds: int,
                 prefix: str = ""):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.errors = redis.RedisError
        self.limits, self.window, self.prefix = (max_failures, max_address_failures), window_seconds, prefix
        self.fallback = MemoryThrottle(max_failures, max_address_failures, window_seconds)
        self._attempt = self.redis.register_script(_ATTEMPT)
        self._succeeded = self.redis.register_script(_SUCCEEDED)
        self._down_until = 0.0

    def _keys(self, username: str, address: str) -> list[str]:
        return [self.prefix + key for key in _keys(username, address)]

    def _call(self, script, args, username: str, address: str, fallback):
        if time.monotonic() < self._down_until:
            return fallback(username, address)
        try:
            return int(script(keys=self._keys(username, address), args=args))
        except self.errors as exc:
            log.warning("sign-in throttle: Redis does not answer (%s); counting in this process for %d s",
                        exc, self.RETRY_SECONDS)
            self._down_until = time.monotonic() + self.RETRY_SECONDS
            return fallback(username, address)

    def attempt(self, username: str, address: str) -> int:
        """Seconds to wait before the next attempt, or 0: go ahead (the attempt counts until `succeeded`)."""
        return self._call(self._attempt, [*self.limits, self.window], username, address, self.fallback.attempt)

    def succeeded(self, username: str, address: str) -> None:
        """The attempt had the right password: the account starts afresh, the address's count is taken back."""
        self._call(self._succeeded, [], username, address, self.fallback.succeeded)


def make_throttle(config: dict):
    """The throttle the configuration asks for."""
    limits = (int(config.get("LOGIN_MAX_FAILURES", 5)), int(config.get("LOGIN_MAX_ADDRESS_FAILURES", 20)))
    window = int(config.get("LOGIN_WINDOW_SECONDS", 900))
    if config.get("REDIS_URL"):
        return RedisThrottle(config["REDIS_URL"], *limits, window, prefix=config.get("LOGIN_THROTTLE_PREFIX", ""))
    return MemoryThrottle(*limits, window)

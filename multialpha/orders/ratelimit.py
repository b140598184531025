"""TradersPost's rate limits (60/min, 500/h), shared by every worker through Redis.

A sliding-window log per window (sorted set of request stamps) checked and
appended in one atomic script, so two workers can never both take the last
slot. Time comes from the caller's clock (tests control it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Callable

import redis

from multialpha import cme_time
from multialpha.keys import Keys

# KEYS: minute zset, hour zset. ARGV: now ms, per-minute, per-hour, member.
# Returns 0 when a slot was taken, else ms to wait before trying again.
_LUA = """
local now = tonumber(ARGV[1])
local windows = {{KEYS[1], 60000, tonumber(ARGV[2])}, {KEYS[2], 3600000, tonumber(ARGV[3])}}
local wait = 0
for _, w in ipairs(windows) do
  redis.call('ZREMRANGEBYSCORE', w[1], '-inf', now - w[2])
  if redis.call('ZCARD', w[1]) >= w[3] then
    local oldest = redis.call('ZRANGE', w[1], 0, 0, 'WITHSCORES')
    local until_free = tonumber(oldest[2]) + w[2] - now + 1
    if until_free > wait then wait = until_free end
  end
end
if wait > 0 then return wait end
for _, w in ipairs(windows) do
  redis.call('ZADD', w[1], now, ARGV[4])
  redis.call('PEXPIRE', w[1], w[2] + 1000)
end
return 0
"""


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        per_minute: int,
        per_hour: int,
        clock: Callable[[], datetime] = cme_time.utcnow,
    ) -> None:
        self._script = client.register_script(_LUA)
        self._keys = [keys.rate_limit("minute"), keys.rate_limit("hour")]
        self.per_minute = per_minute
        self.per_hour = per_hour
        self.clock = clock

    def try_acquire(self) -> float:
        """Take one request slot: 0.0 if granted, else seconds to wait."""
        now_ms = cme_time.to_ms(self.clock())
        member = f"{now_ms}:{uuid.uuid4().hex[:12]}"
        wait_ms = int(self._script(keys=self._keys, args=[now_ms, self.per_minute, self.per_hour, member]))
        return wait_ms / 1000.0

    def acquire(
        self,
        sleep: Callable[[float], None],
        should_stop: Callable[[], bool] = lambda: False,
        give_up_s: float = 7200.0,
    ) -> bool:
        """Wait (through the injected sleep) for a slot. False: stopping, or no
        slot within ``give_up_s`` — the caller must not send."""
        waited = 0.0
        while not should_stop():
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if waited + wait > give_up_s:
                return False
            sleep(wait)
            waited += wait
        return False

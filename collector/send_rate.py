"""`SendRate`: the output-wide send rate limit the driver applies once a destination throttles.

Design note. Per-request exponential backoff alone does not answer sustained
throttling: each request backs off on its own, a request that succeeds resets
nothing for the others, and new requests still start at full speed. The AWS
SDKs' adaptive retry mode adds a client-side rate limit for this (AWS SDKs and
Tools Reference Guide, "Retry behavior",
https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html,
checked 2026-12-06): every attempt takes a token from a bucket whose fill rate
is cut on a throttled answer and grown back on success. We keep that shape and
its constants where they carry over (BETA 0.7, the multiplicative decrease of
botocore's `retries/throttling.py`; 0.5 requests/s, its lowest fill rate;
half-second rate measurements smoothed 0.8), and differ in two places:

- Growth is additive per accepted send (AIMD), not CUBIC over wall-clock time.
  The SDKs' curve needs seconds without a throttled answer to climb; under
  throttling that never lets up (a share of all calls refused, whatever the
  rate) it sinks to the 0.5/s floor, which delivers nothing in bulk. With
  +INCREASE per accepted send and x BETA per cut the rate settles where the two
  balance. Against a real quota of Q requests/s (accepted ~Q/s, a cut for every
  refusal) that is R with R * (R - Q) = Q * INCREASE / (1 - BETA): about
  Q + 10 for large Q (109/s for Q = 100: 8 % refused), 10/s for Q = 5 (the
  CreateLogGroup quota, shared by a whole account anyway). When a share p of
  calls is refused at any rate it is INCREASE * (1 - p) / (p * (1 - BETA)) for
  one request in flight: 15/s at p = 0.4, so data keeps moving. INCREASE
  trades one against the other; 3 keeps the fleet scenario of the tests
  (tests/integration/test_aws_sustained_faults.py) within its budget.
- One cut per window, as TCP congestion control does (one reduction per
  window of data, not per lost segment). The window is the output's
  `concurrency`: after a cut, the rate is cut again only by a throttled answer
  to a send that left after it, and once `window` sends have left since. So
  the refusals of the requests that were in flight together count once, and
  an output with 8 requests in flight is not slowed 8 times as hard as one
  with 1 (at p = 0.4 the limit settles near 60/s instead of 15/s).

Rules, in order: off until the first throttled answer (`acquire` returns at once:
no cost on the hot path); on a throttled answer to a send made after the last
cut: rate = BETA * min(rate, twice the measured send rate), at least MIN_RATE; on an
accepted send: rate += INCREASE, at most twice the measured send rate (an idle
output cannot bank a burst); after QUIET seconds without a throttled answer
(our own rule) the limit is lifted, so a quota reached once does not pace the
output for the rest of the process's life.

One instance per output (the driver's `OutputRunner`), shared by every request
in flight, so `concurrency` requests cannot multiply the rate the destination
asked us to keep. Used from the event loop only.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

BETA = 0.7  # multiplicative decrease on a throttled answer (the SDKs' value)
INCREASE = 3.0  # requests/s added per accepted send
MIN_RATE = 0.5  # requests/s, the lowest rate (the SDKs' minimum fill rate)
SMOOTH = 0.8  # weight of the newest measurement in the smoothed send rate
BUCKET = 0.5  # seconds per send-rate measurement
QUIET = 60.0  # seconds without throttling after which the limit is lifted (ours, not the SDKs')


class SendRate:
    """An adaptive token bucket: `sent = await acquire()` before a send, `record(throttled, sent)` after it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.enabled = False
        self.rate = math.inf  # tokens (sends) per second while enabled
        self.tokens = 0.0
        self._last_refill = clock()
        self.last_cut = -math.inf  # when the rate was last cut
        self.measured = 0.0  # smoothed sends per second
        self._bucket_start = math.floor(clock() / BUCKET) * BUCKET
        self._bucket_count = 0
        self.throttled = 0  # throttled answers seen
        self.cuts = 0  # of which cut the rate
        self.window = 1  # sends per cut window: the output's concurrency (set by the driver)
        self._since_cut = 0  # sends let go since the last cut
        self._lock: asyncio.Lock | None = None

    async def acquire(self) -> float:
        """Wait until a send may go (at once while no limit applies); returns the time it goes.

        Sends queue in arrival order.
        """
        if self.enabled and self._clock() - self.last_cut > QUIET:
            self.enabled, self.rate = False, math.inf
        if not self.enabled:
            return self._clock()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self.enabled:
                self._refill()
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    break
                await asyncio.sleep((1.0 - self.tokens) / self.rate)
        self._since_cut += 1
        return self._clock()

    def record(self, throttled: bool, sent: float) -> None:
        """The answer to a send that `acquire` let go at `sent`: throttled (cut the rate) or not (grow it)."""
        now = self._clock()
        self._measure(now)
        if throttled:
            self.throttled += 1
            if sent < self.last_cut or (self.enabled and self._since_cut < self.window):
                return  # the window of the last cut: already answered for
            self._refill()
            # The rate we were in fact allowed: the limit, or what the cap on growth let through.
            base = self.measured if not self.enabled else min(self.rate, 2.0 * self.measured)
            self.rate = max(MIN_RATE, BETA * base)
            self.last_cut = now
            self._since_cut = 0
            self.cuts += 1
            if not self.enabled:
                self.enabled = True
                self.tokens = 0.0
                self._last_refill = now
        elif self.enabled:
            self._refill()
            self.rate = max(MIN_RATE, min(self.rate + INCREASE, 2.0 * self.measured))

    def _refill(self) -> None:
        now = self._clock()
        if self.enabled:
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self._last_refill) * self.rate)
        self._last_refill = now

    def _measure(self, now: float) -> None:
        """Smoothed sends per second, measured over half-second buckets."""
        self._bucket_count += 1
        bucket = math.floor(now / BUCKET) * BUCKET
        if bucket > self._bucket_start:
            current = self._bucket_count / (bucket - self._bucket_start)
            self.measured = current * SMOOTH + self.measured * (1.0 - SMOOTH)
            self._bucket_count = 0
            self._bucket_start = bucket

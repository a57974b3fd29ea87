"""How hard the sender pushes the DMP: documents/s, requests in flight, a shared pause, retries.

One `Pacer` per run, shared by every sender task (DESIGN §7, "Rate"):
- at most `concurrency` requests in flight;
- never more than `rate` documents/s: aiolimiter's leaky bucket is the ceiling (a burst of
  `burst` documents at most, so over any 1 s window at most rate + burst documents leave);
- when the DMP pushes back (Busy, 429, 503, a Retry-After, a refused connection) **every** sender
  pauses, for the Retry-After or a jittered exponential backoff; after the pause one request goes
  alone (a probe) and only its success lets the others go: an outage costs a few probes, not one
  request per waiting set;
- the rate adapts below the ceiling: halved at each pushback (once per pause), raised by a step
  after each success (multiplicative decrease, additive increase);
- a pause longer than `max_retry_wait` is not waited out: `DmpWaitTooLong` ends the run's
  sending, and the documents wait in the ledger for their `next_attempt_at`; so does a streak of
  pushbacks long enough for the backoff to reach `max_retry_wait` (a DMP down or unreachable:
  about one to two such waits of probing, not a night of it).

`retrying` drives one submission set's attempts with tenacity: jittered exponential backoff,
Retry-After honoured, at most `max_attempts` attempts and no single wait above `max_retry_wait`.

Time is the event loop's clock (`loop.time()`, `asyncio.sleep`), so tests run all of this on a
virtual-time loop, deterministically; jitter comes from an injected `random.Random`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_result
from tenacity.wait import wait_base

__all__ = [
    "DmpWaitTooLong",
    "JitteredBackoff",
    "Pacer",
    "PacingSettings",
    "Signal",
    "Slot",
    "retrying",
]


@dataclass(frozen=True)
class PacingSettings:
    """The knobs of `Pacer`; `from_dmp` maps `[dmp]` settings onto them."""

    rate: float
    """documents per second, at most (the ceiling)"""
    concurrency: int
    """requests in flight, at most"""
    max_retry_wait: float = 60.0
    """a pause the DMP asks for beyond this ends the run's sending"""
    burst: float | None = None
    """documents that may leave at once; default: a tenth of a second's worth, at least 1"""
    backoff_base: float = 0.5
    """first pause (s) after a pushback without Retry-After; doubles with each one in a row"""
    decrease_factor: float = 0.5
    increase_share: float = 0.05
    """each success raises the adaptive rate by this share of the ceiling"""
    floor_share: float = 0.02
    """the adaptive rate never drops below this share of the ceiling"""

    @property
    def bucket(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate / 10)


class Signal(enum.Enum):
    """What one answer tells the pacer."""

    OK = "ok"
    """the DMP answered (stored, refused a document, unknown patient): no pushback"""
    PUSHBACK = "pushback"
    """Busy, 429, 503, Retry-After, connection refused: everyone pauses"""
    NEUTRAL = "neutral"
    """a transient failure that says nothing about load (HTTP 500, a timeout)"""


class DmpWaitTooLong(Exception):
    """The DMP asked for a pause longer than `max_retry_wait`, or kept pushing back until the
    backoff reached it (down, unreachable): stop sending in this run."""

    def __init__(self, wait: float, streak: int = 0) -> None:
        if streak:
            message = (
                f"the DMP pushed back {streak} times in a row (busy, refused or unreachable) "
                f"until the next pause would exceed dmp.max_retry_wait; the documents wait for "
                "the next run"
            )
        else:
            message = f"the DMP asked to wait {wait:.0f} s, more than dmp.max_retry_wait"
        super().__init__(message)
        self.wait, self.streak = wait, streak


class JitteredBackoff(wait_base):
    """A tenacity wait: base·2^(n−1) capped at `cap`, times a factor drawn in [0.5, 1).

    Half-jitter rather than full jitter: a retry never comes almost at once, and senders that
    failed together do not come back together. Retry-After, when the answer gives one, is the
    caller's to honour (see `retrying`).
    """

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base, self.cap, self.rng = base, cap, rng

    def uncapped(self, number: int) -> float:
        """base·2^(n−1), before the cap and the jitter."""
        return self.base * 2 ** max(0, min(number - 1, 30))

    def for_attempt(self, number: int) -> float:
        ceiling = min(self.cap, self.uncapped(number))
        return ceiling * (0.5 + self.rng.random() / 2)

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.for_attempt(retry_state.attempt_number)


class Slot:
    """One request's permission to go; tell it what the answer meant with `report`."""

    def __init__(self, pacer: Pacer, probe: bool) -> None:
        self._pacer, self.probe, self.reported = pacer, probe, False

    def report(self, signal: Signal, retry_after: float | None = None) -> float:
        """Record the answer; for a pushback, returns the pause every sender now observes."""
        self.reported = True
        return self._pacer._report(self, signal, retry_after)


class Pacer:
    """The run's shared gate to the DMP (see the module docstring)."""

    def __init__(self, settings: PacingSettings, *, rng: random.Random | None = None) -> None:
        if settings.rate <= 0 or settings.concurrency < 1:
            raise ValueError("rate must be > 0 and concurrency >= 1")
        self.settings = settings
        self.ceiling = settings.rate
        self.rate = settings.rate
        self._floor = settings.rate * settings.floor_share
        self._bucket = settings.bucket
        self._limiter = AsyncLimiter(self._bucket, self._bucket / settings.rate)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._backoff = JitteredBackoff(
            settings.backoff_base, settings.max_retry_wait, rng or random.Random()
        )
        self._paused_until = 0.0
        self._pushbacks = 0  # in a row, since the last success
        self._probing = False
        self._too_long: float | None = None
        self._too_long_streak = 0
        self._next_start = 0.0  # adaptive spacing below the ceiling (GCRA's theoretical time)
        self._changed = asyncio.Event()
        # What a run summary reports.
        self.pushbacks_total = 0
        self.decreases = 0
        self.paused_seconds = 0.0

    # ---- what senders call ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(self, documents: int) -> AsyncIterator[Slot]:
        """Wait until `documents` may go (in-flight bound, pause, probe, rate); hold the slot."""
        async with self._slots:
            probe = await self._gate()
            slot = Slot(self, probe)
            try:
                await self._spacing(documents)
                await self._take(documents)
                yield slot
            finally:
                if probe and not slot.reported:
                    # Cut before its answer (cancelled, crashed): let another request probe.
                    self._probing = False
                    self._notify()

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._now())

    # ---- internals --------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _gate(self) -> bool:
        """Wait out the shared pause; after a pushback only one request (the probe) goes."""
        while True:
            if self._too_long is not None:
                raise DmpWaitTooLong(self._too_long, self._too_long_streak)
            changed, left = self._changed, self._paused_until - self._now()
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), left)
                continue
            if self._pushbacks and self._probing:
                await changed.wait()
                continue
            if self._pushbacks:
                self._probing = True
                return True
            return False

    async def _spacing(self, documents: int) -> None:
        """Below the ceiling, space requests at the adaptive rate (the ceiling is aiolimiter's)."""
        if self.rate >= self.ceiling:
            return
        now = self._now()
        start = max(now, self._next_start)
        self._next_start = start + documents / self.rate
        if start > now:
            await asyncio.sleep(start - now)

    async def _take(self, documents: int) -> None:
        left = float(documents)
        while left > 0:
            chunk = min(left, self._bucket)
            await self._limiter.acquire(chunk)
            left -= chunk

    def _report(self, slot: Slot, signal: Signal, retry_after: float | None) -> float:
        pause = 0.0
        if signal is Signal.OK:
            self._pushbacks = 0
            self.rate = min(self.ceiling, self.rate + self.ceiling * self.settings.increase_share)
        elif signal is Signal.PUSHBACK:
            pause = self._pushback(retry_after)
        if slot.probe:
            self._probing = False
        self._notify()
        return pause

    def _pushback(self, retry_after: float | None) -> float:
        now = self._now()
        self.pushbacks_total += 1
        if now >= self._paused_until:
            # One step per pause: the other requests in flight when the DMP pushed back bring
            # the same news, not new news (neither a deeper backoff nor a lower rate).
            self._pushbacks += 1
            self.rate = max(self._floor, self.rate * self.settings.decrease_factor)
            self._next_start = now
            self.decreases += 1
        wait = (
            retry_after if retry_after is not None else self._backoff.for_attempt(self._pushbacks)
        )
        if wait > self.settings.max_retry_wait:
            self._too_long = wait
        elif retry_after is None and self._backoff.uncapped(self._pushbacks) > self._backoff.cap:
            # Backed off to the cap and still refused: a DMP down (or a wrong address) is not
            # probed all night; the run ends and says so, the documents keep their state.
            self._too_long, self._too_long_streak = wait, self._pushbacks
        until = now + min(wait, self.settings.max_retry_wait)
        if until > self._paused_until:
            self.paused_seconds += until - max(now, self._paused_until)
            self._paused_until = until
        return wait


class _SetRetrying(AsyncRetrying):
    """tenacity's loop, letting go of its state when the loop ends.

    Its objects refer to each other (the loop and its call state, the loop and its pending
    actions): left as they are, each set's loop was garbage only the collector's full pass
    frees, and it held what the callbacks reach, the set's built documents with them. The
    collector's full passes are rare in a process this size, so a run's memory grew with its
    sets: 4 to 6 MiB at 16 000 and 64 000 patients (`bench/send.py` (d))."""

    async def __anext__(self) -> Any:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            self._retry_state = None  # type: ignore[assignment]  (the loop is over)
            self.iter_state.reset()
            raise


def retrying(
    *,
    max_attempts: int,
    max_retry_wait: float,
    backoff: JitteredBackoff,
    is_transient: Callable[[Any], bool],
    retry_after: Callable[[Any], float | None],
    on_wait: Callable[[Any, float], object] | None = None,
) -> AsyncRetrying:
    """The tenacity loop for one submission set: transient answers are tried again.

    `is_transient(result)` and `retry_after(result)` read the attempt's result (never an
    exception: the client returns every answer as a value). The wait is the Retry-After if the
    answer gave one, else the jittered backoff; the loop stops after `max_attempts`, or before a
    wait longer than `max_retry_wait` (the caller then parks the documents with that wait as
    `next_attempt_at`: `retry_state.upcoming_sleep`).

    `on_wait(result, seconds)` is told, for every transient result, how long until the next
    attempt: before the sleep, or when the loop gives up (then the wait is the caller's to
    record as `next_attempt_at`).
    """

    def wait(state: RetryCallState) -> float:
        assert state.outcome is not None
        given = retry_after(state.outcome.result())
        return float(given) if given is not None else backoff(state)

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= max_attempts or state.upcoming_sleep > max_retry_wait

    async def told(state: RetryCallState) -> Any:
        assert state.outcome is not None
        result = state.outcome.result()
        if on_wait is not None:
            pending = on_wait(result, state.upcoming_sleep)
            if inspect.isawaitable(pending):
                await pending
        return result

    return _SetRetrying(
        retry=retry_if_result(is_transient),
        wait=wait,
        stop=stop,
        before_sleep=told,
        retry_error_callback=told,
    )

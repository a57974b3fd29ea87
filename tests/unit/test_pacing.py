"""The sender's pacing on a virtual clock: the rate ceiling, requests in flight, the shared pause
after a pushback (one probe at a time), the adaptive rate, and tenacity's retry loop.

Every test runs on `VirtualTimeLoop`: waits cost no real time and nothing depends on luck.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import weakref
from dataclasses import dataclass

import pytest

from backfill.pacing import (
    DmpWaitTooLong,
    JitteredBackoff,
    Pacer,
    PacingSettings,
    Signal,
    retrying,
)
from tests.unit.virtual_time import run_virtual


def now() -> float:
    return asyncio.get_running_loop().time()


def pacer(**overrides: object) -> Pacer:
    options: dict[str, object] = {"rate": 10.0, "concurrency": 4, "max_retry_wait": 60.0}
    options.update(overrides)
    return Pacer(PacingSettings(**options), rng=random.Random(7))  # type: ignore[arg-type]


def test_the_rate_is_a_ceiling_over_every_one_second_window() -> None:
    async def main() -> list[float]:
        p = pacer(rate=10.0, burst=2.0, concurrency=8)
        starts: list[float] = []

        async def worker() -> None:
            for _ in range(25):
                async with p.slot(1) as slot:
                    starts.append(now())
                    slot.report(Signal.OK)

        await asyncio.gather(*(worker() for _ in range(4)))
        return starts

    starts = run_virtual(main())
    assert len(starts) == 100
    for first in starts:
        in_window = [t for t in starts if first <= t < first + 1.0]
        assert len(in_window) <= 10 + 2  # rate + burst
    # ... and the ceiling is reached, not undershot: 100 documents take about 10 s.
    assert 9.0 <= starts[-1] - starts[0] <= 10.5


def test_a_set_counts_for_its_documents() -> None:
    async def main() -> float:
        p = pacer(rate=10.0, burst=1.0)
        for _ in range(5):
            async with p.slot(10) as slot:  # more than the burst: taken in parts
                slot.report(Signal.OK)
        return now()

    assert run_virtual(main()) >= 4.0  # 50 documents at 10/s (the first burst is free)


def test_requests_in_flight_never_exceed_the_concurrency() -> None:
    async def main() -> int:
        p = pacer(rate=1000.0, concurrency=3)
        inside = peak = 0

        async def one() -> None:
            nonlocal inside, peak
            async with p.slot(1) as slot:
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.5)
                inside -= 1
                slot.report(Signal.OK)

        await asyncio.gather(*(one() for _ in range(20)))
        return peak

    assert run_virtual(main()) == 3


def test_a_pushback_pauses_every_sender_then_one_probe_goes_alone() -> None:
    async def main() -> tuple[float, list[tuple[str, float]]]:
        p = pacer(rate=1000.0, concurrency=4)
        events: list[tuple[str, float]] = []
        async with p.slot(1) as slot:
            slot.report(Signal.PUSHBACK, retry_after=5.0)
        pushed_at = now()

        async def sender(name: str) -> None:
            async with p.slot(1) as slot:
                events.append((f"start {name} probe={slot.probe}", now()))
                await asyncio.sleep(1.0)
                events.append((f"end {name}", now()))
                slot.report(Signal.OK)

        await asyncio.gather(*(sender(str(i)) for i in range(3)))
        return pushed_at, events

    pushed_at, events = run_virtual(main())
    starts = [(label, t) for label, t in events if label.startswith("start")]
    assert all(t >= pushed_at + 5.0 for _, t in starts), "nobody goes during the pause"
    assert starts[0][0].endswith("probe=True")
    probe_end = next(t for label, t in events if label == "end " + starts[0][0].split()[1])
    assert all(t >= probe_end for _, t in starts[1:]), "the others wait for the probe's answer"
    assert all(label.endswith("probe=False") for label, _ in starts[1:])


def test_an_outage_costs_a_few_probes_not_a_request_per_waiting_sender() -> None:
    """20 s of 503 without Retry-After, 50 senders waiting: the backoff doubles between probes."""

    async def main() -> tuple[int, int]:
        p = pacer(rate=1000.0, concurrency=50)
        outage_end = 20.0
        during = after = 0

        async def sender() -> None:
            nonlocal during, after
            while True:
                async with p.slot(1) as slot:
                    await asyncio.sleep(0.05)  # the request's round trip
                    if now() < outage_end:
                        during += 1
                        slot.report(Signal.PUSHBACK)
                        continue
                    after += 1
                    slot.report(Signal.OK)
                    return

        await asyncio.gather(*(sender() for _ in range(50)))
        return during, after

    during, after = run_virtual(main())
    assert after == 50
    # 50 first requests race the first pushback; then probes only, spaced 0.5, 1, 2, 4… s.
    assert during <= 50 + 8


def test_the_rate_halves_at_a_pushback_once_per_pause_and_climbs_back_additively() -> None:
    async def main() -> list[float]:
        p = pacer(rate=100.0, concurrency=8)
        rates = []
        # Two requests in flight both come back Busy: one decrease, not two.
        async with p.slot(1) as a, p.slot(1) as b:
            a.report(Signal.PUSHBACK, retry_after=1.0)
            b.report(Signal.PUSHBACK, retry_after=1.0)
        rates.append(p.rate)
        for _ in range(12):
            async with p.slot(1) as slot:
                slot.report(Signal.OK)
            rates.append(p.rate)
        return rates

    rates = run_virtual(main())
    assert rates[0] == 50.0
    steps = [b - a for a, b in itertools.pairwise(rates) if b > a]
    assert steps
    assert all(step == pytest.approx(5.0) for step in steps)
    assert max(rates) == 100.0
    assert rates[-1] == 100.0


def test_below_the_ceiling_requests_are_spaced_at_the_adaptive_rate() -> None:
    async def main() -> float:
        p = pacer(rate=10.0, burst=10.0, concurrency=1, increase_share=0.0)
        async with p.slot(1) as slot:
            slot.report(Signal.PUSHBACK, retry_after=0.1)
        start = now()
        for _ in range(10):
            async with p.slot(1) as slot:
                slot.report(Signal.NEUTRAL)
        return now() - start

    # Without the adaptive rate the full bucket would let 10 go at once; at 5/s they take ~2 s.
    assert run_virtual(main()) >= 1.7


def test_a_pause_longer_than_max_retry_wait_stops_the_senders() -> None:
    async def main() -> None:
        p = pacer(max_retry_wait=60.0)
        async with p.slot(1) as slot:
            assert slot.report(Signal.PUSHBACK, retry_after=3600.0) == 3600.0
        async with p.slot(1):
            pass

    with pytest.raises(DmpWaitTooLong, match="3600 s"):
        run_virtual(main())


def test_a_dmp_that_keeps_refusing_ends_the_sending_once_the_backoff_reaches_its_cap() -> None:
    """A DMP down or unreachable from the start (connection refused, no Retry-After): the probes
    back off 0.5, 1, 2, 4, 8 s…; once the next pause would exceed max_retry_wait the run stops
    sending and says so, rather than probing all night."""

    async def main(probes: list[int]) -> None:
        p = pacer(max_retry_wait=10.0)
        while True:
            async with p.slot(1) as slot:
                probes.append(1)
                slot.report(Signal.PUSHBACK)

    probes: list[int] = []
    with pytest.raises(DmpWaitTooLong, match="pushed back 6 times in a row"):
        run_virtual(main(probes))
    assert len(probes) == 6  # pauses of 0.5 to 8 s are waited out; the sixth's 16 s is not


def test_a_streak_broken_by_a_success_starts_over() -> None:
    async def main() -> int:
        p = pacer(max_retry_wait=10.0)
        sent = 0
        for _ in range(3):  # three outages of four refusals each, each ended by a success
            for signal in [Signal.PUSHBACK] * 4 + [Signal.OK]:
                async with p.slot(1) as slot:
                    slot.report(signal)
                    sent += 1
        return sent

    assert run_virtual(main()) == 15


def test_a_probe_cut_before_its_answer_lets_another_probe_go() -> None:
    async def main() -> bool:
        p = pacer()
        async with p.slot(1) as slot:
            slot.report(Signal.PUSHBACK, retry_after=1.0)

        async def cut() -> None:
            async with p.slot(1):
                await asyncio.sleep(100)

        task = asyncio.create_task(cut())
        await asyncio.sleep(2.0)
        task.cancel()
        async with p.slot(1) as slot:
            return slot.probe

    assert run_virtual(main()) is True


# ---- retries (tenacity) ---------------------------------------------------------------------


@dataclass
class Answer:
    transient: bool
    retry_after: float | None = None


def loop_for(max_attempts: int = 8, max_retry_wait: float = 60.0):  # type: ignore[no-untyped-def]
    return retrying(
        max_attempts=max_attempts,
        max_retry_wait=max_retry_wait,
        backoff=JitteredBackoff(0.5, 60.0, random.Random(3)),
        is_transient=lambda a: a.transient,
        retry_after=lambda a: a.retry_after,
    )


async def drive(answers: list[Answer], max_attempts: int = 8, max_retry_wait: float = 60.0):  # type: ignore[no-untyped-def]
    times: list[float] = []
    loop = loop_for(max_attempts, max_retry_wait)
    answer = None
    async for attempt in loop:
        with attempt:
            times.append(now())
            answer = answers[len(times) - 1]
        attempt.retry_state.set_result(answer)
    return times, answer, loop.statistics, attempt.retry_state.upcoming_sleep


def test_transient_answers_are_retried_with_a_growing_jittered_wait() -> None:
    answers = [Answer(True)] * 4 + [Answer(False)]
    times, last, _, _ = run_virtual(drive(answers))
    assert last == Answer(False)
    assert len(times) == 5
    waits = [b - a for a, b in itertools.pairwise(times)]
    for number, wait in enumerate(waits, start=1):
        ceiling = 0.5 * 2 ** (number - 1)
        assert ceiling / 2 <= wait < ceiling


def test_retry_after_is_honoured() -> None:
    times, _, _, _ = run_virtual(drive([Answer(True, retry_after=7.0), Answer(False)]))
    assert times[1] - times[0] == pytest.approx(7.0)


def test_retries_stop_after_max_attempts_with_the_last_answer() -> None:
    times, last, _, upcoming = run_virtual(drive([Answer(True)] * 10, max_attempts=3))
    assert len(times) == 3
    assert last.transient
    assert upcoming > 0  # what the caller records as next_attempt_at


def test_a_wait_beyond_max_retry_wait_is_not_slept_but_handed_back() -> None:
    times, last, _, upcoming = run_virtual(
        drive([Answer(True, retry_after=600.0), Answer(False)], max_retry_wait=60.0)
    )
    assert len(times) == 1
    assert last.transient
    assert upcoming == 600.0


def test_a_finished_loop_leaves_nothing_its_callbacks_reach_to_the_garbage_collector() -> None:
    """Freed by reference counting alone, once the loop is over: a set's built documents (what
    the sender's callbacks reach) do not wait in memory for the collector's rare full pass."""

    class Documents:
        pass

    async def one_set() -> weakref.ref[Documents]:
        documents = Documents()
        seen = weakref.ref(documents)

        def on_wait(answer: Answer, seconds: float) -> None:
            assert documents is not None  # the callback reaches the set's documents

        loop = retrying(
            max_attempts=4,
            max_retry_wait=60.0,
            backoff=JitteredBackoff(0.5, 60.0, random.Random(3)),
            is_transient=lambda a: a.transient,
            retry_after=lambda a: a.retry_after,
            on_wait=on_wait,
        )
        answers = iter([Answer(True), Answer(False)])
        async for attempt in loop:
            with attempt:
                answer = next(answers)
            attempt.retry_state.set_result(answer)
        return seen

    gc.collect()
    gc.disable()
    try:
        seen = run_virtual(one_set())
        assert seen() is None
    finally:
        gc.enable()

"""An asyncio event loop whose clock is virtual: a timer that is due fires at once.

The loop's `time()` is a counter; when the loop would wait for its next timer, the clock jumps
to it instead. `asyncio.sleep`, `wait_for`, aiolimiter and tenacity all read `loop.time()`, so
code under test runs its waits in no real time, and the same way every run.

    run_virtual(main())   # → main's result; `asyncio.get_running_loop().time()` is virtual
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or self.loop is None:
            return ready
        if timeout is None:
            # No timer at all: only real I/O (a thread's call_soon_threadsafe) can wake the loop.
            return super().select(None)
        # Each turn of the loop costs at least a microsecond, as real time would: a timer due in
        # 1e-16 s cannot move a float clock at 5.0 s, and aiolimiter would spin on it forever.
        self.loop.advance(max(timeout, 1e-6))
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coroutine)

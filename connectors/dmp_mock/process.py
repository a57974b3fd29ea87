"""The mock DMP as a real server in a process of its own (`backfill mock-dmp`), started and stopped
by the demo, the crash tests and the benchmarks.

Readiness is not guessed: the child binds its port before it prints its address, so the first line
of its standard output is the signal that it accepts connections. Its logs go to a file, never to a
pipe nobody drains (a full pipe would freeze the server mid-run). It stops by itself when the
program that started it dies without stopping it (`--exit-with-parent`).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["BANNER", "MockProcess", "MockProcessError"]

BANNER = "mock DMP on"
"""How the first line of `backfill mock-dmp`'s standard output starts; the address follows."""

_ADDRESS = re.compile(r"(https?://[^/\s]+)/")


class MockProcessError(RuntimeError):
    """The mock DMP process did not start; the message quotes the end of its log."""


@dataclass
class MockProcess:
    """`backfill mock-dmp` on a free loopback port; a context manager that stops it on exit.

    `log_file` receives the server's logs; `args` are extra `mock-dmp` options (`--latency-ms`,
    `--fault-rate`, `--seed-from-dpi`, …); `env` replaces the environment (the configuration the
    child reads, BACKFILL_SHARED_DIR included).
    """

    store_url: str
    log_file: Path
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    log_level: str = "WARNING"
    base_url: str = field(init=False, default="")
    _process: subprocess.Popen[str] | None = field(init=False, default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> str:
        """Start the server and return its base URL once it accepts connections."""
        command = [
            sys.executable, "-m", "backfill", "--log-level", self.log_level, "mock-dmp",
            "--port", "0", "--db", self.store_url, "--exit-with-parent", *self.args,
        ]  # fmt: skip
        with self.log_file.open("a", encoding="utf-8") as log:
            self._process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=dict(self.env) if self.env is not None else None,
                # Its own session: a Ctrl-C at the terminal reaches the program that started it,
                # which stops it once its own requests are settled, not mid-answer.
                start_new_session=True,
            )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # the banner, or "" when the child exited
        found = _ADDRESS.search(line) if line.startswith(BANNER) else None
        if found is None:
            code = self._process.wait()
            raise MockProcessError(
                f"the mock DMP did not start (exit code {code}): {self._log_tail()}"
            )
        self.base_url = found.group(1)
        return self.base_url

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (uvicorn's graceful stop), SIGKILL past `timeout`; the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def __enter__(self) -> MockProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

"""The demo's work folder: what it holds, whether a new `backfill demo` resumes or starts clean, and
the settings and mock DMP the demo's run uses.

A demo interrupted once its DPI and mock DMP were ready (Ctrl-C while sending, a closed laptop)
resumes: the same DPI, the same mock store, the same ledger, so the rerun ends with the DMP
content an uninterrupted demo would have. Anything else (a first demo, one stopped while its DPI
was being generated, one that completed, another day, other sizes) starts clean. The folder's
`demo.json` records how far the last demo went.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from backfill.config import Settings
from backfill.outputs import write_output
from backfill.selection.paris_time import PARIS
from connectors.dmp.client import SERVICES_PATH
from connectors.dmp_mock.process import MockProcess

__all__ = [
    "DEMO_FAULTS",
    "DemoFolder",
    "DemoStart",
    "Stage",
    "configure_faults",
    "held_documents",
]

Stage = Literal["generating", "ready", "complete"]
_STATE_VERSION = 1

# A DMP on an ordinary day: a little latency and a few refusals, so retries show in the summary.
# The stalled answers (the document is stored, the answer comes after the client gave up) are the
# case an idempotent resend exists for; the demo's read timeout is shorter than the stall.
DEMO_FAULTS: dict[str, float | int] = {
    "latency_ms": 3,
    "busy_ratio": 0.02,
    "error500_ratio": 0.01,
    "timeout_after_store_ratio": 0.002,
    "stall_seconds": 4.0,
    "seed": 7,
}
DEMO_READ_TIMEOUT = 2.0
# The report's bonus estimate needs the establishment's 2019 activity and a window: the fictitious
# establishment gets an illustrative one, unless the configuration gives its own.
DEMO_ACTIVITY = 40_000
DEMO_WINDOW = "S2-2023"


@dataclass(frozen=True)
class DemoStart:
    """What a new demo found in its folder."""

    resumed: bool
    reason: str


@dataclass(frozen=True)
class DemoFolder:
    """One demo's work folder and the sizes it was asked for."""

    root: Path
    patients: int
    seed: int
    as_of: dt.date
    rate: float = 500.0

    # -- what it holds ---------------------------------------------------------------------------

    @property
    def dpi_url(self) -> str:
        return f"sqlite:///{self.root / 'dpi.sqlite'}"

    @property
    def content_root(self) -> Path:
        """The synthetic DPI's share: its `file:` documents are read from here only."""
        return self.root / "dpi-files"

    @property
    def ledger_url(self) -> str:
        return f"sqlite:///{self.root / 'ledger.sqlite'}"

    @property
    def mock_store_url(self) -> str:
        return f"sqlite:///{self.root / 'mock-dmp.sqlite'}"

    @property
    def config_file(self) -> Path:
        """A configuration for the other commands on the demo's DPI and ledger."""
        return self.root / "backfill.toml"

    @property
    def report_file(self) -> Path:
        return self.root / "report.html"

    @property
    def indicator_file(self) -> Path:
        return self.root / "indicator.json"

    @property
    def _state_file(self) -> Path:
        return self.root / "demo.json"

    _OWN = (
        "dpi.sqlite", "dpi-files", "ledger.sqlite", "mock-dmp.sqlite", "mock-dmp.log",
        "backfill.lock", "audit.json", "decisions.csv", "cda", "report.html", "indicator.json",
        "backfill.toml", "demo.json",
    )  # fmt: skip

    # -- resume or start clean -------------------------------------------------------------------

    def begin(self, *, fresh: bool = False) -> DemoStart:
        """Decide from `demo.json`; on a clean start, remove what an earlier demo left."""
        reason = "asked for (--fresh)" if fresh else self._why_not_resume()
        if reason is None:
            return DemoStart(True, f"resuming the demo interrupted on {self._state()['at']}")
        self._remove_own_files()
        self.mark("generating")
        return DemoStart(False, f"starting clean: {reason}")

    def _why_not_resume(self) -> str | None:
        state = self._state()
        if not state:
            return "no earlier demo in this folder"
        wanted = {"patients": self.patients, "seed": self.seed, "as_of": self.as_of.isoformat()}
        if state.get("version") != _STATE_VERSION:
            return "the earlier demo was made by another version"
        if state.get("stage") == "complete":
            return "the earlier demo completed"
        if state.get("stage") != "ready":
            return "the earlier demo stopped before its DPI and mock DMP were ready"
        for key, value in wanted.items():
            if state.get(key) != value:
                return f"the earlier demo had {key} {state.get(key)}, this one {value}"
        return None

    def _state(self) -> dict[str, Any]:
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def mark(self, stage: Stage) -> None:
        """Record how far the demo went (written whole, never half)."""
        state = {
            "version": _STATE_VERSION,
            "stage": stage,
            "patients": self.patients,
            "seed": self.seed,
            "as_of": self.as_of.isoformat(),
            "at": dt.datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_output(self._state_file, json.dumps(state, indent=2) + "\n")

    def _remove_own_files(self) -> None:
        for name in self._OWN:
            for path in (self.root / name, *self.root.glob(f"{name}-*")):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)

    # -- the pieces of its run -------------------------------------------------------------------

    def mock(self, log_level: str = "WARNING") -> MockProcess:
        """The mock DMP in a process of its own, on this folder's store (not yet started)."""
        return MockProcess(self.mock_store_url, self.root / "mock-dmp.log", log_level=log_level)

    def settings(self, base: Settings, mock_base_url: str) -> Settings:
        """`base` with the demo's DPI, ledger, lock and mock DMP (no metrics file)."""
        return base.model_copy(
            update={
                "dpi": base.dpi.model_copy(
                    update={"url": self.dpi_url, "content_root": self.content_root}
                ),
                "ledger": base.ledger.model_copy(update={"url": self.ledger_url}),
                "dmp": base.dmp.model_copy(
                    update={
                        "url": mock_base_url + SERVICES_PATH,
                        "rate": self.rate,
                        "concurrency": 8,
                        "read_timeout": DEMO_READ_TIMEOUT,
                        "max_retry_wait": 10.0,
                    }
                ),
                "run": base.run.model_copy(
                    update={"lock_file": self.root / "backfill.lock", "metrics_file": None}
                ),
                "indicator": base.indicator.model_copy(
                    update={
                        "activity": base.indicator.activity or DEMO_ACTIVITY,
                        "window": base.indicator.window or DEMO_WINDOW,
                    }
                ),
            }
        )

    def write_config(self) -> None:
        """backfill.toml: `backfill --config <it> indicator|status|report|audit` on the demo's data."""
        text = (
            "# Written by `backfill demo`: the other commands on the demo's DPI and ledger, e.g.\n"
            f"#   backfill --config {self.config_file} indicator\n"
            "[dpi]\n"
            f"url = {json.dumps(self.dpi_url)}\n"
            f"content_root = {json.dumps(str(self.content_root))}\n"
            "[ledger]\n"
            f"url = {json.dumps(self.ledger_url)}\n"
            "[run]\n"
            f"lock_file = {json.dumps(str(self.root / 'backfill.lock'))}\n"
        )
        write_output(self.config_file, text)


def configure_faults(mock_base_url: str, faults: dict[str, float | int] | None = None) -> None:
    """Set the mock's injected faults (its control plane, `POST /_mock/faults`)."""
    answer = httpx.post(mock_base_url + "/_mock/faults", json=faults or DEMO_FAULTS, timeout=30)
    answer.raise_for_status()


def held_documents(mock_base_url: str) -> list[dict[str, Any]]:
    """What the mock DMP holds (`GET /_mock/documents`)."""
    answer = httpx.get(mock_base_url + "/_mock/documents", timeout=60)
    answer.raise_for_status()
    held = answer.json()
    assert isinstance(held, list)
    return held

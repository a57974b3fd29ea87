"""The sender's speed against the mock DMP in its own process (issue 9 §6), beside baselines.

(a) 20 ms of DMP latency: the engine's documents/s beside a one-request-at-a-time sender;
(b) no latency: the engine's documents/s as a share of the mock's own capacity (bench/mock_dmp.py's
    load generator, same run, same machine);
(c) a limit of 100 documents/s: achieved share, and the most documents sent in any 1 s window;
(d) peak RSS of a whole run, in a process of its own, at two DPI sizes (flat is the aim), with
    its build workers' beside it;
(e) a rerun after the complete run of the largest size: its time as a share of the first run's.

    python bench/send.py [--patients 3000] [--rss-patients 1000,4000] [--pdf-kb 8]

Sizes default to what this 2-core machine runs in a few minutes; the figures say what was run.
About 55 % of synthetic patients have a document to send: `--rss-patients 18000,180000` sends
about 10 000 and 100 000 documents (the issue's sizes; the second takes a quarter of an hour).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_dmp import documents as bench_documents
from mock_dmp import drive

from backfill.config import DmpSettings, DpiSettings, LedgerSettings, RunSettings, Settings
from backfill.databases import open_engine
from backfill.dmp_session import async_dmp_client, dmp_client
from backfill.documents import build_selected
from backfill.pipeline import RunSummary, run, run_blocking
from backfill.selection import DEFAULT_RULE, decide, load_rule
from backfill.selection.paris_time import PARIS
from backfill.testing import descendants, status_mib
from connectors.dmp_mock.process import MockProcess
from connectors.dmp_mock.seeding import seed_from_dpi
from connectors.dmp_mock.testing import request_for
from connectors.dpi.synthetic.generator import GenerationOptions, generate

AS_OF = dt.datetime(2026, 11, 20, 12, tzinfo=PARIS)
IN_FLIGHT = 32  # `[dmp] concurrency` of (a) and (b): the engine at its fastest on this machine


def make_dpi(folder: Path, patients: int, pdf_kb: int) -> tuple[str, Path]:
    url = f"sqlite:///{folder / f'dpi-{patients}.sqlite'}"
    engine = open_engine(url, "DPI")
    try:
        generate(
            engine,
            GenerationOptions(
                patients=patients,
                seed=7,
                as_of=AS_OF.date(),
                pdf_kb=pdf_kb,
                files_dir=folder / f"files-{patients}",
            ),
        )
    finally:
        engine.dispose()
    return url, folder / f"files-{patients}"


def settings(dpi: tuple[str, Path], ledger: Path, services: str, **dmp: Any) -> Settings:
    options: dict[str, Any] = {"url": services, "rate": 10_000.0, "concurrency": 8}
    options.update(dmp)
    return Settings(
        dpi=DpiSettings(url=dpi[0], content_root=dpi[1]),
        ledger=LedgerSettings(url=f"sqlite:///{ledger}"),
        dmp=DmpSettings(**options),
        run=RunSettings(lock_file=ledger.with_suffix(".lock")),
    )


class Recording:
    """The real async client, noting when each set left (after the pacer let it go) and how
    many documents it held: the limit governs what leaves, so (c) is judged on these."""

    def __init__(
        self, inner: Any, on_first: Callable[[], None] | None = None, *, keep: bool = True
    ) -> None:
        self.inner = inner
        self.stamps: list[tuple[float, int]] = []
        self.on_first = on_first
        self.keep = keep  # (d) keeps none: 8 MB over 74 000 POSTs, in the peak it measures

    async def submit(self, patient_id: str, documents: Any, **options: Any) -> Any:
        if self.on_first is not None:
            self.on_first()
            self.on_first = None
        if self.keep:
            self.stamps.append((time.monotonic(), len(documents)))
        return await self.inner.submit(patient_id, documents, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def fresh_mock(base: str, dpi: tuple[str, Path], latency_ms: int = 0) -> None:
    httpx.post(base + "/_mock/reset")
    engine = open_engine(dpi[0], "DPI")
    try:
        seed_from_dpi(engine, base)
    finally:
        engine.dispose()
    httpx.post(base + "/_mock/faults", json={"latency_ms": latency_ms})


def engine_run(
    config: Settings, on_first: Callable[[], None] | None = None, *, stamps: bool = True
) -> tuple[RunSummary, list[tuple[float, int]], float]:
    async def go() -> tuple[RunSummary, list[tuple[float, int]]]:
        async with async_dmp_client(config) as real:
            client = Recording(real, on_first, keep=stamps)
            summary = await run(
                config, mode="bench", rule=load_rule(DEFAULT_RULE), as_of=AS_OF, client=client
            )
            return summary, client.stamps

    started = time.monotonic()
    summary, stamps = run_blocking(go())
    return summary, stamps, time.monotonic() - started


def sending_rate(stamps: Sequence[tuple[float, int]], started_after: float = 0.0) -> float:
    if len(stamps) < 2:
        return 0.0
    docs = sum(n for _, n in stamps[1:])
    return docs / (stamps[-1][0] - stamps[0][0])


def sequential(config: Settings, limit: int) -> float:
    """The naive sender, end to end like the engine: read, build, POST one document, wait for
    its answer, next (selection is done before the clock starts)."""
    engine = open_engine(config.dpi.url or "", "DPI")
    try:
        wanted = [
            (d.document_id, d.replaces_unique_id)
            for d in decide(
                engine, load_rule(DEFAULT_RULE), AS_OF, content_root=config.dpi.content_root
            )
            if d.selected and not d.replaces_unique_id
        ][:limit]
        client = dmp_client(config)
        try:
            started = time.monotonic()
            sent = 0
            for outcome in build_selected(
                engine, wanted, config.establishment.as_cda(), content_root=config.dpi.content_root
            ):
                if outcome.built is not None:
                    doc = outcome.built
                    client.submit(doc.entry.patient_id, [(doc.entry, doc.xml)])
                    sent += 1
            return sent / (time.monotonic() - started)
        finally:
            client.close()
    finally:
        engine.dispose()


def most_in_one_second(stamps: Sequence[tuple[float, int]]) -> int:
    best, start, total = 0, 0, 0
    for end in range(len(stamps)):
        total += stamps[end][1]
        while stamps[end][0] - stamps[start][0] >= 1.0:
            total -= stamps[start][1]
            start += 1
        best = max(best, total)
    return best


class Peak:
    """The highest value `sample()` gives, read every 0.2 s on a thread until `stop()`."""

    def __init__(self, sample: Callable[[], float]) -> None:
        self.peak = 0.0
        self._sample = sample
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, self._sample())

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak


def workers_peak() -> float:
    """The highest peak RSS (VmHWM, MiB) of this process's descendants: build workers are the
    fork server's children, not this process's, so `RUSAGE_CHILDREN` does not see them (Linux
    only, like the machine the figures are for)."""
    peak = 0.0
    for pid in descendants(os.getpid()):
        try:
            peak = max(peak, status_mib("VmHWM", pid))
        except OSError:
            continue  # left meanwhile
    return peak


def wal_mib(ledger: Path) -> float:
    """The size of the SQLite ledger's write-ahead log (MiB): it resets only when no read holds it."""
    try:
        return ledger.with_name(ledger.name + "-wal").stat().st_size / 2**20
    except FileNotFoundError:
        return 0.0


class CpuSpent:
    """CPU seconds used from now to `stop()`: the whole machine's less the mock's (the engine's,
    with its fork server and workers, on a machine otherwise idle), this process's, the mock's
    (Linux: /proc)."""

    def __init__(self, mock_pid: int) -> None:
        self.mock_pid = mock_pid
        self.restart()

    def restart(self) -> None:
        self.start = self._read()

    def _read(self) -> tuple[float, float, float]:
        tick = os.sysconf("SC_CLK_TCK")
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        # user, nice, system, irq, softirq (not idle, iowait or steal)
        machine = sum(int(x) for x in fields[:3] + fields[5:7]) / tick
        mock = Path(f"/proc/{self.mock_pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = resource.getrusage(resource.RUSAGE_SELF)
        return machine, own.ru_utime + own.ru_stime, (int(mock[11]) + int(mock[12])) / tick

    def stop(self) -> tuple[float, float, float]:
        """(engine, this process, mock) seconds."""
        (machine, own, mock), (machine0, own0, mock0) = self._read(), self.start
        return machine - machine0 - (mock - mock0), own - own0, mock - mock0


def cpu_line(spent: Sequence[float], wanted: float, aim: str) -> str:
    """What an aim would take: the CPU per document while sending (the engine's: its process,
    fork server and workers; the mock's beside it) against what `wanted` documents/s leaves."""
    engine, own, mock = (1000 * x for x in spent)
    cores = os.cpu_count() or 1
    return (
        f"CPU per document while sending: engine {engine:.2f} ms (its own process {own:.2f}), "
        f"mock {mock:.2f}; {aim} ({wanted:.0f}/s) on {cores} cores needs the engine at "
        f"≤ {1000 * cores / wanted - mock:.2f} ms and its own process at ≤ {1000 / wanted:.2f} (one core)"
    )


def rss_child(dpi_url: str, files: str, ledger: str, services: str) -> None:
    """In a child process: one whole run, then print its peak RSS and its build workers' (MiB),
    the documents acked and POSTs made, the run's time (s), the RSS before the run, the peaks of
    selection and of sending, and the largest the ledger's WAL grew (MiB).

    The peak is the run's own: the kernel's high-water mark is reset once the bench and the
    engine are imported (their imports peak higher than a small run, and would hide it)."""
    config = settings((dpi_url, Path(files)), Path(ledger), services)
    before = status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the present RSS (Linux)
    selecting: list[float] = []

    def first_set() -> None:  # selection is over: its peak, then the sending's from here
        selecting.append(status_mib("VmHWM"))
        Path("/proc/self/clear_refs").write_text("5")

    workers, wal = Peak(workers_peak), Peak(lambda: wal_mib(Path(ledger)))
    summary, _, total = engine_run(config, first_set, stamps=False)
    workers_mib, wal_peak = workers.stop(), wal.stop()
    sending = status_mib("VmHWM")
    peak = max([sending, *selecting])
    print(
        f"{peak:.1f} {workers_mib:.1f} {summary.acked} {summary.posts} {total:.2f} {before:.1f} "
        f"{(selecting or [0.0])[0]:.1f} {sending:.1f} {wal_peak:.1f}"
    )


def whole_run(sized: tuple[str, Path], ledger: Path, services: str) -> list[str]:
    """`rss_child` in a process of its own (a fresh interpreter: peak RSS is this run's alone)."""
    return subprocess.run(
        [sys.executable, __file__, "--rss-child", sized[0], str(sized[1]), str(ledger), services],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1].split()  # fmt: skip


def start_mock(folder: Path) -> tuple[MockProcess, str]:
    server = MockProcess(f"sqlite:///{folder / 'mock.sqlite'}", folder / "mock.log")
    return server, server.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--rss-patients", default="1000,4000")
    parser.add_argument("--pdf-kb", type=int, default=8)
    parser.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return
    os.environ.setdefault("BACKFILL_LOGGING_LEVEL", "WARNING")
    from backfill.logs import configure_logging

    configure_logging("WARNING", "json")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dpi = make_dpi(folder, args.patients, args.pdf_kb)
        server, base = start_mock(folder)
        services = base + "/si-dmp-server/v2/services"
        try:
            print(
                f"synthetic DPI of {args.patients} patients, {args.pdf_kb} KB PDFs; mock DMP in its own process"
            )
            # (a) 20 ms latency: requests in flight bound the rate (Little's law): 8 of them
            # stop near 300 documents/s whatever the sender's speed; 32 leave it to the CPU.
            fresh_mock(base, dpi, latency_ms=20)
            config = settings(dpi, folder / "a.sqlite", services, concurrency=IN_FLIGHT)
            spent = CpuSpent(server.pid)
            summary, stamps, total = engine_run(config, spent.restart)
            a_cpu = [x / summary.acked for x in spent.stop()]
            engine_rate = sending_rate(stamps)
            fresh_mock(base, dpi, latency_ms=20)
            naive = sequential(config, 150)
            print(
                f"(a) 20 ms latency: engine {engine_rate:7.1f} documents/s while sending ({summary.acked} documents, run {total:.1f} s end to end, {summary.acked / total:.1f}/s); one request at a time {naive:6.1f} documents/s → ×{engine_rate / naive:.1f}"
            )
            print("    " + cpu_line(a_cpu, 10 * naive, "×10"))
            # (b) no latency: beside the mock's own capacity
            fresh_mock(base, dpi)
            spent = CpuSpent(server.pid)
            # Even with no latency, 8 requests in flight left a fifth of the machine idle: each
            # request also waits for its build, its ledger commit and the other processes'
            # turns on two cores (the mock's own capacity is the same from 4 to 16 clients).
            summary, stamps, total = engine_run(
                settings(dpi, folder / "b.sqlite", services, concurrency=IN_FLIGHT), spent.restart
            )
            # From the first set sent to the end: selection and start-up are not in the rate.
            b_cpu = [x / summary.acked for x in spent.stop()]
            engine_rate = sending_rate(stamps)
            # The best of three short loads: one alone swung by a third with the machine's drift.
            capacity, failures = 0.0, 0
            for attempt in range(3):
                singles = bench_documents(300, args.pdf_kb, offset=300 * attempt)
                httpx.post(base + "/_mock/reset", timeout=60)
                elapsed, _, failed = drive(
                    services + "/repository", [request_for([d]) for d in singles], 8
                )
                capacity, failures = max(capacity, len(singles) / elapsed), failures + failed
            print(
                f"(b) no latency: engine {engine_rate:7.1f} documents/s while sending ({summary.posts} POSTs for {summary.acked} documents); mock's capacity with 8 clients of 1-document sets (best of 3) {capacity:7.1f} documents/s ({failures} failures) → {100 * engine_rate / capacity:.0f} %"
            )
            print("    " + cpu_line(b_cpu, 0.8 * capacity, "80 %"))
            # Latency is a sleep in the mock, not work: no sender outruns the mock's capacity.
            print(
                f"    (a)'s ceiling on this machine, a sender costing nothing: the mock's capacity ÷ one request at a time = ×{capacity / naive:.1f}"
            )
            # (c) a limit of 100 documents/s
            fresh_mock(base, dpi)
            config = settings(dpi, folder / "c.sqlite", services, rate=100.0)
            summary, stamps, total = engine_run(config)
            achieved = sending_rate(stamps)
            burst = max(1.0, 100.0 / 10)
            print(
                f"(c) limit 100 documents/s: achieved {achieved:6.1f} ({achieved:.0f} %), most sent in any 1 s window {most_in_one_second(stamps)} (limit + burst = {100 + burst:.0f})"
            )
            # (d) peak RSS at two or more sizes; (e) a rerun after the largest
            for patients in (int(p) for p in args.rss_patients.split(",")):
                sized = make_dpi(folder, patients, args.pdf_kb)
                fresh_mock(base, sized)
                ledger = folder / f"d{patients}.sqlite"
                peak, workers, acked, posts, first, before, selecting, sending, wal = whole_run(
                    sized, ledger, services
                )
                print(
                    f"(d) peak RSS of a whole run, {patients} patients: {peak} MiB (at its start {before}, selecting {selecting}, sending {sending}; build workers {workers} MiB each at most; the ledger's WAL {wal} MiB at most) for {acked} documents sent in {float(first):.1f} s"
                )
            _, _, _, posts, again, *_ = whole_run(sized, ledger, services)
            print(
                f"(e) rerun after a complete run of {acked} documents: {float(again):.2f} s vs {float(first):.2f} s → {100 * float(again) / float(first):.1f} % ({posts} POSTs)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()

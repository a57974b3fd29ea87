"""Mock DMP capacity: requests/s, documents/s, p50/p99 latency for 1- and 10-document submissions.

The mock runs in its own process (`backfill mock-dmp`), driven from this one by a few concurrent
httpx clients with 50 KB PDFs (about 70 KB of CDA each). Baseline measured in the same run: the
same clients calling the mock's cheapest route (GET /_mock/stats), i.e. the HTTP floor.

    python bench/mock_dmp.py [--requests 200] [--clients 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from cda.build import BuiltDocument, build_document
from cda.examples import ESTABLISHMENT, example_documents
from connectors.dmp_mock.process import MockProcess
from connectors.dmp_mock.testing import request_for


def documents(count: int, pdf_kb: int, offset: int = 0) -> list[BuiltDocument]:
    template, patient = example_documents(pdf_kb * 1024)["ldl"]
    return [
        build_document(dataclasses.replace(template, document_id=f"bench-{os.getpid()}-{i}", set_id=f"bench-{i}"), patient, ESTABLISHMENT, xsd_check=False)
        for i in range(offset, offset + count)
    ]  # fmt: skip


def drive(
    url: str, bodies: list[tuple[str, bytes]], clients: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0

    def one(pair: tuple[str, bytes]) -> tuple[float, bool]:
        content_type, body = pair
        started = time.perf_counter()
        response = http.post(url, content=body, headers={"content-type": content_type})
        ok = response.status_code == 200 and b"ResponseStatusType:Success" in response.content
        return time.perf_counter() - started, ok

    with (
        httpx.Client(timeout=60, limits=httpx.Limits(max_connections=clients)) as http,
        ThreadPoolExecutor(clients) as pool,
    ):
        started = time.perf_counter()
        for latency, ok in pool.map(one, bodies):
            latencies.append(latency)
            failures += not ok
        elapsed = time.perf_counter() - started
    return elapsed, latencies, failures


def floor(base: str, count: int, clients: int) -> float:
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: http.get(base + "/_mock/stats"), range(count)))
        return count / (time.perf_counter() - started)


def report(
    label: str, elapsed: float, latencies: list[float], per_request: int, failures: int
) -> None:
    quantiles = statistics.quantiles(latencies, n=100)
    print(
        f"{label:<24} {len(latencies) / elapsed:7.1f} requests/s  {len(latencies) * per_request / elapsed:7.1f} documents/s  "
        f"p50 {quantiles[49] * 1000:6.1f} ms  p99 {quantiles[98] * 1000:6.1f} ms  failures {failures}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pdf-kb", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = MockProcess(f"sqlite:///{Path(tmp) / 'mock.sqlite'}", Path(tmp) / "mock.log")
        base = server.start()
        try:
            url = base + "/si-dmp-server/v2/services/repository"
            print(
                f"mock DMP in its own process; {args.clients} concurrent clients; {args.pdf_kb} KB PDFs"
            )
            print(
                f"{'baseline GET /_mock/stats':<24} {floor(base, args.requests, args.clients):7.1f} requests/s (HTTP floor)"
            )
            singles = documents(args.requests, args.pdf_kb)
            elapsed, latencies, failures = drive(
                url, [request_for([d]) for d in singles], args.clients
            )
            report("1-document sets", elapsed, latencies, 1, failures)
            tens = documents(args.requests * 2, args.pdf_kb, offset=args.requests)
            sets = [request_for(tens[i : i + 10]) for i in range(0, len(tens), 10)]
            elapsed, latencies, failures = drive(url, sets, args.clients)
            report("10-document sets", elapsed, latencies, 10, failures)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

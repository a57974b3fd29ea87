"""Selection speed and memory: the decision stream over synthetic DPIs of 100 000 and 1 000 000 documents.

For each size and backend (SQLite; PostgreSQL when BACKFILL_TEST_PG_URL or --pg-url is set) it
bulk-loads generated rows (small contents, no synthetic generator), then measures, each in a
fresh process so its peak RSS (VmHWM) is its own: a baseline — `SELECT document_id FROM dpi_document` streamed the same way — and
the full decision stream (history-5y, counted as the audit does; `--rules` names others, e.g.
history-5y-focused, whose per-kind limit adds a window function), and, with --worklist, the
stream with the identity column the worklist needs. With --ledger-rows N (default 1 000 000) it
also fills a ledger of N documents (a third acknowledged, some patients without a DMP) and
measures the decision stream merging that ledger's facts (DESIGN §12: at least half of the
`decisions` figure). Prints documents/s and the peak RSS of each phase's process: flat memory
means the peak does not grow from 100 000 to 1 000 000.

    python bench/selection.py [--sizes 100000 1000000] [--pg-url URL] [--backends sqlite postgresql]
                              [--ledger-rows 1000000 | 0] [--rules history-5y history-5y-focused]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import random
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backfill.testing import status_mib
from cda.ins import compute_key
from connectors.dpi.contract import (
    create_contract,
    dpi_author,
    dpi_document,
    dpi_patient,
    dpi_unit,
    metadata,
)

AS_OF = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
PDF = b"%PDF-1.4\n% bench\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
KINDS = ("LDL", "CRH", "CRO", "CR_CONSULT", "CR_URG", "CR_BIO", "CR_IMG", "ORDO", "OTHER")
# The synthetic DPI's specialties (three in general practice), so that a rule filtering on them
# finds its codes.
SPECIALTIES = ("G15_10/SM26", "G15_10/SM04", "G15_10/SM15", "G15_10/SM53", "G15_10/SM20",
               "G15_10/SM22", "G15_10/SM32", "G15_10/SM02", "G15_10/SM40", "G15_10/SM54")  # fmt: skip
DEFAULT_RULE = "history-5y"
DOCS_PER_PATIENT = 5
BATCH = 20_000


def _patients(count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        # The matricule encodes the sex and birth month the row says (one per IPP).
        sex, born = rng.choice("MF"), dt.date(1950 + n % 50, 1 + n % 12, 1 + n % 28)
        body = f"{'1' if sex == 'M' else '2'}{born:%y%m}75{n % 1_000_000:06d}"
        rows.append(
            {
                "ipp": f"P{n:08d}",
                "ins_matricule": body + compute_key(body),
                "ins_oid": "1.2.250.1.213.1.4.10",
                "identity_status": "QUAL" if rng.random() < 0.8 else rng.choice(("PROV", "VALI")),
                "identity_doubtful": rng.random() < 0.01,
                "identity_fictitious": False,
                "birth_family_name": "NOM",
                "birth_given_names": "PRENOM",
                "first_birth_given_name": "PRENOM",
                "used_family_name": None,
                "used_given_name": None,
                "sex": sex,
                "birth_date": born,
                "birth_place_code": "75112",
                "deceased": rng.random() < 0.02,
                "death_date": None,
                "dmp_opposition": rng.random() < 0.01,
            }
        )
    return rows


def _documents(first: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    start = dt.datetime(2001, 1, 1)
    for n in range(first, first + count):
        set_n = n if rng.random() < 0.9 else max(n - 1, 0)
        rows.append(
            {
                "document_id": f"D{n:09d}",
                "set_id": f"S{set_n:09d}",
                "version": 1 if set_n == n else 2,
                "ipp": f"P{n // DOCS_PER_PATIENT:08d}",
                "stay_id": None,
                "kind": KINDS[rng.randrange(len(KINDS))] if rng.random() < 0.4 else "CRH",
                "title": "Compte rendu",
                "created_at": start + dt.timedelta(seconds=rng.randrange(26 * 365 * 86400)),
                "status": "validated" if rng.random() < 0.95 else "draft",
                "author_id": f"A{n % 50}",
                "legal_authenticator_id": None,
                "authenticated_at": None,
                "unit_code": f"U{n % 10}",
                "mime_type": "application/pdf",
                "content": PDF,
                "content_uri": None,
                "masked_ps": False,
                "invisible_patient": False,
                "invisible_legal_rep": False,
                "sent_live_at": None,
                "dmp_unique_id": None,
            }
        )
    return rows


def _copy(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL COPY in binary-safe text form (bulk load; the bench measures reading)."""
    names = [c.name for c in table.columns]
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row.get(name) for name in names])


def load(url: str, documents: int) -> float:
    """Create and fill a DPI of `documents` rows; seconds taken."""
    started = time.perf_counter()
    rng = random.Random(42)
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    create_contract(engine)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.execute(
            dpi_unit.insert(),
            [
                {"unit_code": f"U{i}", "name": f"U{i}", "practice_setting_code": "ETABLISSEMENT",
                 "computerized_since": dt.date(2005, 1, 1) if i == 0 else None}
                for i in range(10)
            ],
        )  # fmt: skip
        conn.execute(
            dpi_author.insert(),
            [
                {"author_id": f"A{i}", "rpps": f"{10000000000 + i}", "adeli": None,
                 "family_name": "DOC", "given_name": "T",
                 "specialty_code": SPECIALTIES[i % len(SPECIALTIES)]}
                for i in range(50)
            ],
        )  # fmt: skip
        patients = _patients((documents + DOCS_PER_PATIENT - 1) // DOCS_PER_PATIENT, rng)
        for first in range(0, len(patients), BATCH):
            chunk = patients[first : first + BATCH]
            _copy(conn, dpi_patient, chunk) if pg else conn.execute(dpi_patient.insert(), chunk)
        for first in range(0, documents, BATCH):
            chunk = _documents(first, min(BATCH, documents - first), rng)
            _copy(conn, dpi_document, chunk) if pg else conn.execute(dpi_document.insert(), chunk)
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, which an exec resets (ru_maxrss keeps the parent's)."""
    try:
        return status_mib("VmHWM")
    except OSError:  # no /proc
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_ledger(url: str, rows: int) -> float:
    """A ledger of `rows` documents matching the bench DPI's ids; seconds taken.

    A third acknowledged, the rest rejected, waiting or selected; every 50th patient has no DMP
    until after AS_OF. Bulk-loaded (the bench measures reading).
    """
    from backfill.ledger import Ledger
    from backfill.ledger.schema import bf_document, bf_patient, bf_run

    started = time.perf_counter()
    Ledger.open(url).close()
    when = AS_OF
    engine = sa.create_engine(url)
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if not pg:
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
        conn.execute(
            bf_run.insert(),
            [
                {
                    "run_id": 1,
                    "mode": "run",
                    "taken": rows,
                    "started_at": when,
                    "host": "bench",
                    "pid": 0,
                }
            ],
        )
        states = ("acked", "rejected", "acked", "retry_wait", "acked", "selected")
        for first in range(0, rows, BATCH):
            chunk = []
            for n in range(first, min(first + BATCH, rows)):
                state = states[n % len(states)]
                chunk.append(
                    {
                        "document_id": f"D{n:09d}", "set_id": f"S{n:09d}", "version": 1,
                        "ipp": f"P{n // DOCS_PER_PATIENT:08d}", "kind": "CRH", "state": state,
                        "replaces_unique_id": None,
                        "unique_id": f"2.25.{n}" if state == "acked" else None,
                        "hash": "0" * 40 if state == "acked" else None, "size": 1000,
                        "attempts": 1, "next_attempt_at": None, "last_code": None,
                        "last_text": None, "submission_set_id": None, "attempt_id": None,
                        "selected_at": when, "updated_at": when,
                        "acked_at": when if state == "acked" else None,
                        "selected_run_id": 1, "run_id": 1,
                    }
                )  # fmt: skip
            _copy(conn, bf_document, chunk) if pg else conn.execute(bf_document.insert(), chunk)
        patients = [
            {
                "ipp": f"P{n:08d}", "dmp_status": "no_dmp" if n % 50 == 0 else "unknown",
                "recheck_at": when + dt.timedelta(days=30) if n % 50 == 0 else None,
                "code": None, "urgent": False, "last_stay_at": None, "updated_at": when,
            }
            for n in range((rows + DOCS_PER_PATIENT - 1) // DOCS_PER_PATIENT)
        ]  # fmt: skip
        for first in range(0, len(patients), BATCH):
            chunk = patients[first : first + BATCH]
            _copy(conn, bf_patient, chunk) if pg else conn.execute(bf_patient.insert(), chunk)
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE bf_document")
            conn.exec_driver_sql("ANALYZE bf_patient")
    engine.dispose()
    return time.perf_counter() - started


def _load_phase(name: str, url: str, queue: Any) -> None:
    size = int(name)
    queue.put((size, load(url, size), peak_rss_mb(), ""))


def _phase(name: str, url: str, queue: Any, ledger_url: str | None = None) -> None:
    if name.isdigit():
        _load_phase(name, url, queue)
        return
    if name.startswith("ledger-load:"):
        rows = int(name.partition(":")[2])
        assert ledger_url is not None
        queue.put((rows, load_ledger(ledger_url, rows), peak_rss_mb(), ""))
        return
    from backfill.selection import decide, load_rule
    from backfill.selection.audit import AuditCounts
    from backfill.selection.reasons import Reason
    from backfill.selection.worklist import Worklist

    engine = sa.create_engine(url)
    started = time.perf_counter()
    if name == "baseline":
        rows = 0
        query = sa.select(dpi_document.c.document_id)
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            for partition in result.partitions():
                rows += len(partition)
        extra = ""
    else:
        from backfill.ledger import Ledger

        name, _, rule_name = name.partition("=")
        counts = AuditCounts()
        worklist = Worklist() if name == "worklist" else None
        facts = Ledger.open_existing(ledger_url) if name == "ledger" and ledger_url else None
        stream = decide(
            engine,
            load_rule(rule_name or DEFAULT_RULE),
            AS_OF,
            identity_aside=worklist is not None,
            facts=facts,
        )
        for decision in counts.count(stream):
            if worklist is not None:
                worklist.add(decision)
        rows = counts.total
        extra = f"selected {counts.selected}"
        if rule_name:
            extra += (
                f" under {rule_name} (not_relevant {counts.excluded[Reason.NOT_RELEVANT]}, "
                f"beyond_kind_limit {counts.excluded[Reason.BEYOND_KIND_LIMIT]})"
            )
        if worklist is not None:
            extra += f", worklist {len(worklist)} patients"
        if facts is not None:
            extra += (
                f", already_in_dmp {counts.excluded[Reason.ALREADY_IN_DMP]}, "
                f"no_dmp {counts.excluded[Reason.NO_DMP]}"
            )
            facts.close()
    seconds = time.perf_counter() - started
    engine.dispose()
    queue.put((rows, seconds, peak_rss_mb(), extra))


def measure(name: str, url: str, ledger_url: str | None = None) -> tuple[int, float, float, str]:
    """One phase in a fresh process, so its peak RSS is its own."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_phase, args=(name, url, queue, ledger_url))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("BACKFILL_TEST_PG_URL"))
    parser.add_argument("--worklist", action="store_true", help="also time the worklist stream")
    parser.add_argument(
        "--ledger-rows",
        type=int,
        default=1_000_000,
        help="rows of the ledger whose facts the `ledger` phase merges (0: no such phase)",
    )
    parser.add_argument(
        "--rules",
        nargs="+",
        default=[DEFAULT_RULE],
        help="rules whose decision stream is timed (the first also for worklist and ledger)",
    )
    args = parser.parse_args()
    first = "" if args.rules[0] == DEFAULT_RULE else f"={args.rules[0]}"
    phases = ["baseline", f"decisions{first}"]
    phases += [f"decisions={rule}" for rule in args.rules[1:]]
    phases += [f"worklist{first}"] if args.worklist else []
    if args.ledger_rows:
        phases.append(f"ledger{first}")
    print(
        f"{'backend':<11}{'documents':>10}  {'phase':<10}{'docs/s':>10}{'seconds':>9}{'peak RSS MB':>13}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        for backend in args.backends:
            if backend == "postgresql" and not args.pg_url:
                print("postgresql: skipped (set BACKFILL_TEST_PG_URL or --pg-url)")
                continue
            for size in args.sizes:
                schema = None
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'dpi-{size}.sqlite'}"
                    # The ledger usually lives in another database than the DPI.
                    ledger_url = f"sqlite:///{Path(tmp) / f'ledger-{size}.sqlite'}"
                else:
                    schema = f"bench_{uuid.uuid4().hex[:8]}"
                    admin = sa.create_engine(args.pg_url)
                    with admin.begin() as conn:
                        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
                    url = (
                        sa.make_url(args.pg_url)
                        .update_query_dict({"options": f"-csearch_path={schema}"})
                        .render_as_string(hide_password=False)
                    )
                    ledger_url = url  # its own tables (bf_…) in the bench schema
                try:
                    _, seconds, peak, _ = measure(str(size), url)  # loading, in its own process too
                    print(
                        f"{backend:<11}{size:>10}  {'load':<10}{size / seconds:>10.0f}{seconds:>9.1f}"
                        f"{peak:>13.0f}",
                        flush=True,
                    )
                    if args.ledger_rows:
                        rows, seconds, peak, _ = measure(
                            f"ledger-load:{args.ledger_rows}", url, ledger_url
                        )
                        print(
                            f"{backend:<11}{size:>10}  {'ledger':<10}{rows / seconds:>10.0f}"
                            f"{seconds:>9.1f}{peak:>13.0f}  loaded {rows} ledger rows",
                            flush=True,
                        )
                    for phase in phases:
                        rows, took, peak, extra = measure(phase, url, ledger_url)
                        assert rows == size, (rows, size)
                        label = phase.partition("=")[0]
                        print(
                            f"{backend:<11}{size:>10}  {label:<10}{rows / took:>10.0f}{took:>9.1f}"
                            f"{peak:>13.0f}  {extra}",
                            flush=True,
                        )
                finally:
                    if schema is not None:
                        with admin.begin() as conn:
                            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
                        admin.dispose()
                    elif backend == "sqlite":
                        for used in (url, ledger_url):
                            for suffix in ("", "-wal", "-shm"):
                                Path(used.removeprefix("sqlite:///") + suffix).unlink(
                                    missing_ok=True
                                )


if __name__ == "__main__":
    main()

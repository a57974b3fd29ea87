"""Synthetic DPI generation speed: 20 000 patients at 8 KB per PDF, on SQLite and PostgreSQL.

Prints documents/s, seconds and peak RSS for the generator, beside a baseline measured in the
same run: inserting the same number of document rows, with the same content size, prepared in
advance (what the database alone costs). PostgreSQL runs when BACKFILL_TEST_PG_URL or --pg-url is set.

    python bench/generate.py [--patients 20000] [--pdf-kb 8] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from connectors.dpi.contract import dpi_document, metadata
from connectors.dpi.synthetic import GenerationOptions, generate
from connectors.dpi.synthetic.generator import sqlite_speedups


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline(engine: sa.Engine, documents: int, pdf_bytes: int) -> float:
    """Seconds to insert `documents` fixed rows of `pdf_bytes` content, in batches of 5 000."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    blob = os.urandom(pdf_bytes)
    now = dt.datetime(2026, 1, 1)
    row = {c.name: None for c in dpi_document.columns} | {
        "set_id": "s", "version": 1, "ipp": "p", "kind": "LDL", "title": "t", "created_at": now,
        "status": "validated", "masked_ps": False, "invisible_patient": False,
        "invisible_legal_rep": False, "content": blob, "mime_type": "application/pdf",
    }  # fmt: skip
    started = time.perf_counter()
    for first in range(0, documents, 5000):
        batch = [row | {"document_id": f"d{i}"} for i in range(first, min(documents, first + 5000))]
        with engine.begin() as conn:
            conn.execute(dpi_document.insert(), batch)
    return time.perf_counter() - started


def run(label: str, url: str, patients: int, pdf_kb: int, files_dir: Path) -> None:
    engine = sa.create_engine(url)
    sqlite_speedups(engine)
    options = GenerationOptions(
        patients=patients, seed=1, as_of=dt.date(2026, 11, 1), pdf_kb=pdf_kb,
        files_dir=files_dir, replace=True,
    )  # fmt: skip
    report = generate(engine, options)
    base = baseline(engine, report.documents, pdf_kb * 1024)
    engine.dispose()
    print(
        f"{label:<11} generator: {report.patients} patients, {report.documents} documents in "
        f"{report.seconds:6.1f} s = {report.documents / report.seconds:7.0f} documents/s | "
        f"baseline insert of the same rows: {base:5.1f} s = {report.documents / base:7.0f} rows/s | "
        f"generator / baseline = {report.seconds / base:4.1f}x | peak RSS so far {peak_rss_mb():.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--pdf-kb", type=int, default=8)
    parser.add_argument("--pg-url", default=os.environ.get("BACKFILL_TEST_PG_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run(
            "SQLite",
            f"sqlite:///{folder / 'dpi.sqlite'}",
            args.patients,
            args.pdf_kb,
            folder / "f1",
        )
        if args.pg_url:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.pg_url)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            url = sa.make_url(args.pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
            try:
                run(
                    "PostgreSQL",
                    url.render_as_string(hide_password=False),
                    args.patients,
                    args.pdf_kb,
                    folder / "f2",
                )
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
        else:
            print("PostgreSQL  skipped: set BACKFILL_TEST_PG_URL or pass --pg-url")


if __name__ == "__main__":
    main()

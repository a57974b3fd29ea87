"""A small synthetic DPI, settings pointing at it, a ledger and a mock DMP, and what to expect.

Shared by the sender's integration tests: the DPI is SQLite (selection's own tests cover the DPI
on both backends); the ledger is the `database` fixture's, so the sender runs on both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import httpx

from backfill.config import DmpSettings, DpiSettings, LedgerSettings, RunSettings, Settings
from backfill.databases import open_engine
from backfill.selection import DEFAULT_RULE, decide, load_rule
from backfill.selection.paris_time import PARIS
from cda.identifiers import unique_id_for
from connectors.dpi.synthetic.generator import GenerationOptions, generate

AS_OF_DAY = dt.date(2026, 11, 20)
AS_OF = dt.datetime.combine(AS_OF_DAY, dt.time(12), tzinfo=PARIS)
FINESS = "999999990"


@dataclass(frozen=True)
class Dpi:
    url: str
    files: Path


def make_dpi(folder: Path, *, patients: int = 25, seed: int = 5) -> Dpi:
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'dpi.sqlite'}"
    engine = open_engine(url, "DPI")
    try:
        generate(
            engine,
            GenerationOptions(
                patients=patients, seed=seed, as_of=AS_OF_DAY, pdf_kb=1, files_dir=folder / "files"
            ),
        )
    finally:
        engine.dispose()
    return Dpi(url, folder / "files")


def settings_for(dpi: Dpi, ledger_url: str, dmp_url: str, folder: Path, **dmp: object) -> Settings:
    options: dict[str, object] = {"url": dmp_url, "rate": 2000.0, "concurrency": 4}
    options.update(dmp)
    return Settings(
        dpi=DpiSettings(url=dpi.url, content_root=dpi.files),
        ledger=LedgerSettings(url=ledger_url),
        dmp=DmpSettings(**options),  # type: ignore[arg-type]
        run=RunSettings(lock_file=folder / "backfill.lock", metrics_file=folder / "metrics.prom"),
    )


def selected_unique_ids(dpi: Dpi) -> dict[str, str]:
    """uniqueId → document_id of what the default rule selects on a fresh ledger."""
    engine = open_engine(dpi.url, "DPI")
    try:
        return {
            unique_id_for(FINESS, d.document_id): d.document_id
            for d in decide(engine, load_rule(DEFAULT_RULE), AS_OF, content_root=dpi.files)
            if d.selected
        }
    finally:
        engine.dispose()


def mock_documents(base_url: str) -> list[dict[str, object]]:
    return httpx.get(base_url + "/_mock/documents").json()  # type: ignore[no-any-return]


def mock_stats(base_url: str) -> dict[str, int]:
    return httpx.get(base_url + "/_mock/stats").json()  # type: ignore[no-any-return]

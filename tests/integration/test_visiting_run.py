"""`run --visiting`: the sender sends the history of the patients around a visit, and only theirs.

Against the mock DMP over TCP, the ledger on SQLite and PostgreSQL (the patient query itself is
tested on both DPI backends in test_visiting.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backfill.databases import open_engine
from backfill.pipeline import run
from backfill.selection import DEFAULT_RULE, decide, load_rule
from backfill.visiting import visiting_ipps
from cda.identifiers import unique_id_for
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.seeding import seed_from_dpi
from connectors.dmp_mock.server import MockServer
from tests.conftest import Database
from tests.integration.pipeline_support import AS_OF, FINESS, make_dpi, mock_documents, settings_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dpi(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    # Seed chosen so that two visiting patients have history to send (the generator changed).
    return make_dpi(tmp_path_factory.mktemp("dpi"), patients=60, seed=14)


def test_a_visiting_run_sends_only_the_visiting_patients(
    dpi, database: Database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    engine = open_engine(dpi.url, "DPI")
    try:
        with engine.connect() as conn:
            around = set(visiting_ipps(conn, AS_OF, 7))
        selected = {
            d.document_id: d.ipp
            for d in decide(engine, load_rule(DEFAULT_RULE), AS_OF, content_root=dpi.files)
            if d.selected
        }
    finally:
        engine.dispose()
    expected = {unique_id_for(FINESS, doc) for doc, ipp in selected.items() if ipp in around}
    others = {unique_id_for(FINESS, doc) for doc, ipp in selected.items() if ipp not in around}
    assert expected, "the synthetic DPI should have visiting patients with history to send"
    assert others, "… and patients who are not visiting"

    with MockServer(MockConfig(db_url=f"sqlite:///{tmp_path / 'mock.sqlite'}")) as mock:
        engine = open_engine(dpi.url, "DPI")
        try:
            seed_from_dpi(engine, mock.services_url)
        finally:
            engine.dispose()
        seeded = {d["unique_id"] for d in mock_documents(mock.base_url)}
        settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
        summary = asyncio.run(
            run(settings, mode="nightly", rule=load_rule(DEFAULT_RULE), as_of=AS_OF,
                visiting=True, lookahead_days=7)
        )  # fmt: skip
        sent = {str(d["unique_id"]) for d in mock_documents(mock.base_url)} - seeded
    assert summary.exit_code == 0, summary.lines()
    assert sent == expected
    assert not sent & others
    # Its own series: the summary, the ledger's run and the metrics all say so.
    assert summary.mode == "nightly+visiting"
    assert 'mode="nightly+visiting"' in (tmp_path / "metrics.prom").read_text()

"""The sender end to end against the mock DMP over TCP, with the ledger on SQLite and PostgreSQL.

Each test generates a small synthetic DPI (SQLite: the DPI's backends are selection's tests'
business) and runs `backfill.pipeline.run` with the real async client, then checks what a user
checks: what the DMP holds (`/_mock/documents`), the ledger's states, the exit code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backfill.cda_workers import BuildPool
from backfill.databases import open_engine
from backfill.dmp_session import async_dmp_client
from backfill.ledger import DocState, Ledger
from backfill.pipeline import RunSummary, run
from backfill.selection import DEFAULT_RULE, decide, load_rule
from cda.identifiers import unique_id_for
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.seeding import seed_from_dpi
from connectors.dmp_mock.server import MockServer
from connectors.dpi.contract import dpi_patient
from tests.conftest import Database
from tests.integration.pipeline_support import (
    AS_OF,
    FINESS,
    make_dpi,
    mock_documents,
    selected_unique_ids,
    settings_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dpi(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_dpi(tmp_path_factory.mktemp("dpi"), patients=25, seed=5)


@pytest.fixture
def mock(tmp_path: Path, dpi):  # type: ignore[no-untyped-def]
    """The mock DMP, holding what the live feed sent (so replacements have their targets)."""
    with MockServer(MockConfig(db_url=f"sqlite:///{tmp_path / 'mock.sqlite'}")) as server:
        engine = open_engine(dpi.url, "DPI")
        try:
            seed_from_dpi(engine, server.services_url)
        finally:
            engine.dispose()
        server.seeded = {d["unique_id"] for d in mock_documents(server.base_url)}  # type: ignore[attr-defined]
        yield server


def ours(mock: Any) -> list[str]:
    """The uniqueIds the DMP holds that we sent (the live feed's seeded ones aside), one per
    stored document: a duplicate would show twice."""
    return sorted(
        str(d["unique_id"])
        for d in mock_documents(mock.base_url)
        if d["unique_id"] not in mock.seeded
    )


def send(settings: Any, **options: Any) -> RunSummary:
    return asyncio.run(
        run(settings, mode="nightly", rule=load_rule(DEFAULT_RULE), as_of=AS_OF, **options)
    )


def ledger_states(url: str) -> Counter[str]:
    with Ledger.open(url) as ledger:
        return Counter({state.value: n for state, n in ledger.counts().items() if n})


def test_a_run_sends_the_selection_once_and_a_second_run_sends_nothing(
    dpi, mock, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    starts: list[BuildPool] = []
    real_start = BuildPool.start

    def start(pool: BuildPool) -> None:
        starts.append(pool)
        real_start(pool)

    monkeypatch.setattr(BuildPool, "start", start)
    first = send(settings)
    assert len(starts) == 1, "the build workers are started while selection runs"
    assert first.exit_code == 0, first.lines()
    assert ours(mock) == sorted(expected)  # each stored once
    assert first.invariant is not None
    assert first.invariant.holds
    assert first.acked == len(expected)
    assert ledger_states(database.url) == Counter({"acked": len(expected)})
    assert "backfill_run_acked" in (tmp_path / "metrics.prom").read_text()

    second = send(settings)
    assert second.exit_code == 0, second.lines()
    assert second.posts == 0
    assert ours(mock) == sorted(expected)
    assert len(starts) == 1, "a rerun with nothing selected starts no build worker"


class _Corrupting:
    """The real client, but one document's bytes are altered on the way (its metadata's hash
    no longer matches): the DMP refuses that document, located by its entry."""

    def __init__(self, inner: Any, victim: str) -> None:
        self.inner, self.victim = inner, victim

    async def submit(self, patient_id: str, documents: Any, **options: Any) -> Any:
        altered = [
            (entry, xml.replace(b"</ClinicalDocument>", b"<!--x--></ClinicalDocument>"))
            if entry.unique_id == self.victim
            else (entry, xml)
            for entry, xml in documents
        ]
        return await self.inner.submit(patient_id, altered, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_one_bad_document_is_rejected_with_its_code_and_its_neighbours_go(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    # A patient with several selected documents, one of which goes bad.
    by_patient: dict[str, list[str]] = {}
    for unique_id, document_id in expected.items():
        by_patient.setdefault(document_id.split("-")[0], []).append(unique_id)
    victim = next(ids for ids in by_patient.values() if len(ids) >= 3)[1]

    async def go() -> RunSummary:
        async with async_dmp_client(settings) as real:
            return await run(
                settings,
                mode="nightly",
                rule=load_rule(DEFAULT_RULE),
                as_of=AS_OF,
                client=_Corrupting(real, victim),
            )

    summary = asyncio.run(go())
    assert summary.exit_code == 0, summary.lines()
    assert set(ours(mock)) == set(expected) - {victim}
    with Ledger.open(database.url) as ledger:
        status = ledger.status()
    assert status.counts[DocState.REJECTED] == 1
    assert status.counts[DocState.ACKED] == len(expected) - 1
    assert summary.reasons  # the DMP's code is counted
    assert all(code.startswith("XDS") or "Hash" in code for code in summary.reasons)


def test_refused_authentication_stops_the_run_with_exit_2_and_marks_nothing_failed(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    settings = settings.model_copy(
        update={"vihf": settings.vihf.model_copy(update={"structure_id": "1000000000"})}
    )
    summary = send(settings)
    assert summary.exit_code == 2, summary.lines()
    assert "refused" in (summary.stop_reason or "")
    states = ledger_states(database.url)
    assert set(states) <= {"selected", "sending"}  # never rejected, never retry_wait
    assert ours(mock) == []


def test_a_wrong_endpoint_stops_the_run_with_exit_2(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    wrong = mock.base_url + "/nowhere/v2/services"
    settings = settings_for(dpi, database.url, wrong, tmp_path)
    summary = send(settings)
    assert summary.exit_code == 2, summary.lines()
    assert set(ledger_states(database.url)) <= {"selected", "sending"}


def test_max_documents_stops_with_exit_3_and_the_next_run_finishes(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    first = send(settings, max_documents=5)
    assert first.exit_code == 3, first.lines()
    assert first.acked <= 5
    assert first.invariant is not None
    assert first.invariant.holds
    second = send(settings)
    assert second.exit_code == 0, second.lines()
    assert ours(mock) == sorted(expected)


class _Recorder:
    """A progress display that remembers what it was told."""

    def __init__(self) -> None:
        self.patients, self.acked, self.started, self.stopped = 0, 0, 0, 0
        self.hint: int | None = None

    def start(self, patients_hint: int | None) -> None:
        self.started += 1
        self.hint = patients_hint

    def advance(self, documents: int, acked: int) -> None:
        self.patients += documents
        self.acked += acked

    def stop(self) -> None:
        self.stopped += 1


def test_the_progress_display_counts_each_acknowledgement_once(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    """Patients are sent concurrently: the bar's count is each patient's own, never the run's
    total read at another sender's moment (which counted others' documents again)."""
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path, concurrency=8)
    shown = _Recorder()
    summary = send(settings, progress=shown)
    assert summary.exit_code == 0, summary.lines()
    assert (shown.started, shown.stopped) == (1, 1)
    assert shown.acked == summary.acked == len(selected_unique_ids(dpi))
    assert shown.patients == summary.patients
    assert shown.hint == summary.patients, "the bar's total is the patients the run will take"


def test_until_reached_stops_with_exit_3_and_the_next_run_finishes(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    """`--until` already reached when the run starts sending: it takes no more patients, says
    why, leaves the ledger whole; the next run sends the rest, nothing twice."""
    import datetime as dt

    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    first = send(settings, until=dt.datetime.now(dt.UTC))
    assert first.exit_code == 3, first.lines()
    assert first.stop_reason is not None
    assert "--until" in first.stop_reason
    assert first.invariant is not None
    assert first.invariant.holds
    assert first.acked < len(expected)
    second = send(settings)
    assert second.exit_code == 0, second.lines()
    assert ours(mock) == sorted(expected)


def test_a_dmp_unreachable_from_the_start_ends_the_run_with_exit_3_and_marks_nothing(
    dpi, database: Database, tmp_path: Path
) -> None:
    """Nothing listens at the configured address (a DMP down, a wrong port): after a few probes
    backing off to dmp.max_retry_wait the run stops sending, says why, and every document keeps
    a state the next run takes up; nothing is rejected."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services = f"http://127.0.0.1:{port}/si-dmp-server/v2/services"
    settings = settings_for(dpi, database.url, services, tmp_path, max_retry_wait=2.0)
    summary = send(settings)
    assert summary.exit_code == 3, summary.lines()
    assert summary.stop_reason is not None
    assert "in a row" in summary.stop_reason
    assert summary.acked == 0
    assert summary.posts <= 8, "the probes back off; no request per waiting set"
    assert summary.invariant is not None
    assert summary.invariant.holds
    assert "rejected" not in ledger_states(database.url)


def test_faults_and_an_outage_end_with_everything_acked_once_and_no_retry_storm(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    """10 % busy, 5 % HTTP 500, 2 % timeout after store and an outage.

    Shortened for the suite's wall time: the outage lasts 4 s (not 20 s), a stalled answer 2 s,
    and the client gives up waiting after 1 s; the behaviour under test (a shared pause, probes
    only, resends recognised as duplicates) does not depend on the durations.
    """
    settings = settings_for(
        dpi, database.url, mock.services_url, tmp_path, read_timeout=1.0, max_retry_wait=30.0
    )
    expected = selected_unique_ids(dpi)
    faults = {
        "busy_ratio": 0.10,
        "error500_ratio": 0.05,
        "timeout_after_store_ratio": 0.02,
        "outage_seconds": 4,
        "stall_seconds": 2,
        "seed": 3,
    }
    assert httpx.post(mock.base_url + "/_mock/faults", json=faults).status_code == 200
    summary = send(settings, seed=1)
    assert summary.exit_code == 0, summary.lines()
    assert ours(mock) == sorted(expected)  # zero duplicates
    sets = -(-len(expected) // 1)  # at worst one POST per document
    probes = 10
    assert summary.posts <= 1.3 * sets + probes, summary.lines()
    assert ledger_states(database.url) == Counter({"acked": len(expected)})


def test_dry_run_builds_everything_and_writes_nothing(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    summary = send(settings, dry_run=True)
    assert summary.exit_code == 0, summary.lines()
    assert summary.by_state.get("would send") == len(selected_unique_ids(dpi))
    assert ours(mock) == []
    assert Ledger.open_existing(database.url) is None or not ledger_states(database.url)


def test_manual_mode_refuses_an_excluded_document_with_its_reason(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    one = sorted(expected.values())[0]
    ipp = one.split("-")[0]
    summary = asyncio.run(
        run(
            settings,
            mode="manual",
            rule=load_rule(DEFAULT_RULE),
            as_of=AS_OF,
            ipps=[ipp],
            document_ids=[one, "NO-SUCH-DOC"],
        )
    )
    assert summary.refused == {"NO-SUCH-DOC": "not_in_dpi"}
    assert summary.exit_code == 1  # something asked for did not go
    assert ours(mock) == [u for u, d in expected.items() if d == one]


def test_a_replacement_of_a_live_sent_version_deprecates_it(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    engine = open_engine(dpi.url, "DPI")
    try:
        replacing = [
            d
            for d in decide(engine, load_rule(DEFAULT_RULE), AS_OF, content_root=dpi.files)
            if d.selected and d.replaces_unique_id
        ]
    finally:
        engine.dispose()
    assert replacing, "the synthetic DPI has versions replacing live-sent ones"
    summary = send(settings)
    assert summary.exit_code == 0, summary.lines()
    held = {d["unique_id"]: d for d in mock_documents(mock.base_url)}
    for decision in replacing:
        assert held[decision.replaces_unique_id]["status"] == "Deprecated"
        new = unique_id_for(FINESS, decision.document_id)
        assert held[new]["status"] == "Approved"
    assert summary.lookups == len(replacing)


def test_a_patient_without_a_dmp_is_deferred_and_not_asked_again_within_the_recheck(
    dpi, mock, database: Database, tmp_path: Path
) -> None:
    settings = settings_for(dpi, database.url, mock.services_url, tmp_path)
    expected = selected_unique_ids(dpi)
    ipp = sorted(expected.values())[0].split("-")[0]
    engine = open_engine(dpi.url, "DPI")
    try:
        with engine.connect() as conn:
            ins, oid = conn.execute(
                sa.select(dpi_patient.c.ins_matricule, dpi_patient.c.ins_oid).where(
                    dpi_patient.c.ipp == ipp
                )
            ).one()
    finally:
        engine.dispose()
    answer = httpx.put(
        mock.base_url + "/_mock/patients", json=[{"ins": ins, "oid": oid, "state": "NO_DMP"}]
    )
    assert answer.status_code == 200
    theirs = {u for u, d in expected.items() if d.startswith(ipp + "-")}

    first = send(settings)
    assert first.exit_code == 0, first.lines()
    assert set(ours(mock)) == set(expected) - theirs
    assert first.reasons["XDSUnknownPatientId"] == len(theirs)
    assert ledger_states(database.url) == Counter(
        {"acked": len(expected) - len(theirs), "deferred": len(theirs)}
    )
    second = send(settings)  # within no_dmp_recheck_days: selection says no_dmp, nothing is sent
    assert second.posts == 0
    assert second.exit_code == 0, second.lines()

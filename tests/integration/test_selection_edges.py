"""Named edge cases of the decision query, on SQLite and PostgreSQL (the hypothesis test roams; these pin)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from backfill.errors import DataSourceError
from backfill.selection import InMemoryLedgerFacts, Reason, decide, load_rule
from backfill.selection import portable_sql as ps
from backfill.selection.compiler import compile_decisions, corrupt_pdfs_query
from backfill.selection.facts import check_file_content
from connectors.dpi.contract import create_contract
from tests.integration.selection_support import (
    PDF,
    author,
    document,
    insert,
    matricule,
    patient,
    unit,
)

# 29 February 2024, 10:00 in Paris (UTC+1).
AS_OF = dt.datetime(2024, 2, 29, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(contract_engine: sa.Engine) -> sa.Engine:
    return contract_engine


def _decisions(engine: sa.Engine, rows: dict, **kwargs) -> dict[str, object]:
    insert(engine, {"units": [unit(since=dt.date(2019, 3, 1))], "authors": [author()], **rows})
    return {
        d.document_id: d
        for d in decide(
            engine, kwargs.pop("rule", load_rule()), kwargs.pop("as_of", AS_OF), **kwargs
        )
    }


def test_depth_edges_29_february_and_computerization(engine: sa.Engine) -> None:
    # history-5y at 29 Feb 2024 10:00 keeps from 28 Feb 2019 10:00 (Paris) on.
    cut = dt.datetime(2019, 2, 28, 10, 0)
    got = _decisions(
        engine,
        {
            "patients": [patient("P1")],
            "documents": [
                document("at-cut", "P1", cut, unit_code="U2"),
                document("just-before", "P1", cut - dt.timedelta(microseconds=1), unit_code="U2"),
                document("as-of", "P1", dt.datetime(2024, 2, 29, 10, 0)),
                document("after", "P1", dt.datetime(2024, 2, 29, 10, 0, 0, 1)),
                document("on-computerization-day", "P1", dt.datetime(2019, 3, 1, 0, 0)),
                document("day-before", "P1", dt.datetime(2019, 2, 28, 23, 59)),
            ],
        },
    )
    assert got["at-cut"].decision == "selected"
    assert got["just-before"].reason is Reason.OLDER_THAN_DEPTH
    assert got["as-of"].decision == "selected"
    assert got["after"].reason is Reason.FUTURE_DATED
    assert got["on-computerization-day"].decision == "selected"
    assert got["day-before"].reason is Reason.BEFORE_COMPUTERIZATION


def test_spring_gap_on_the_cut_off_day(engine: sa.Engine) -> None:
    # 5 years before 2029-03-31 02:30 CEST is 2024-03-31 02:30: inside that day's gap, read
    # as 01:30 UTC (fold=0). 03:15 that day is 01:15 UTC: older. 02:45 is 01:45 UTC: kept.
    as_of = dt.datetime(2029, 3, 31, 0, 30, tzinfo=dt.UTC)
    got = _decisions(
        engine,
        {
            "patients": [patient("P1")],
            "documents": [
                document("gap-0245", "P1", dt.datetime(2024, 3, 31, 2, 45)),
                document("summer-0315", "P1", dt.datetime(2024, 3, 31, 3, 15)),
                document("summer-0345", "P1", dt.datetime(2024, 3, 31, 3, 45)),
            ],
        },
        as_of=as_of,
    )
    assert got["gap-0245"].decision == "selected"
    assert got["summer-0315"].reason is Reason.OLDER_THAN_DEPTH
    assert got["summer-0345"].decision == "selected"


def test_identity_edges_corsica_nia_and_keys(engine: sa.Engine) -> None:
    t = dt.datetime(2023, 5, 5, 12)
    corsican = matricule("280012A123456")
    got = _decisions(
        engine,
        {
            "patients": [
                patient("corsica", ins_matricule=corsican, sex="F"),
                patient(
                    "nia", ins_matricule=matricule("3800199123456"), ins_oid="1.2.250.1.213.1.4.9"
                ),
                patient(
                    "bad-key", ins_matricule=corsican[:13] + f"{(int(corsican[13:]) % 97) + 1:02d}"
                ),
                patient("lower-2a", ins_matricule=corsican.replace("2A", "2a")),
                patient("other-oid", ins_oid="1.2.3.4"),
                patient("blank-name", birth_family_name="  "),
            ],
            "documents": [
                document(ipp, ipp, t)
                for ipp in ("corsica", "nia", "bad-key", "lower-2a", "other-oid", "blank-name")
            ]
            + [document("orphan", "PX", t)],
        },
    )
    assert got["corsica"].decision == "selected"
    # The only NIA OID is a production one: a test DMP (the default environment) never gets it.
    assert got["nia"].reason is Reason.INS_WRONG_ENVIRONMENT
    assert got["bad-key"].reason is Reason.INS_INVALID
    assert got["lower-2a"].reason is Reason.INS_INVALID
    assert got["other-oid"].reason is Reason.INS_MISSING
    assert got["blank-name"].reason is Reason.INS_TRAITS_INCOMPLETE
    assert got["orphan"].reason is Reason.IDENTITY_NOT_QUALIFIED


def test_versions_replacements_and_ledger_facts(engine: sa.Engine, tmp_path: Path) -> None:
    t = dt.datetime(2023, 5, 5, 12)
    good = tmp_path / "share" / "good.pdf"
    good.parent.mkdir()
    good.write_bytes(PDF)
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(PDF)
    facts = InMemoryLedgerFacts(
        acked={"B": {1: "2.25.ours-b1"}},
        no_dmp={"P2": AS_OF + dt.timedelta(days=3)},
    )
    got = _decisions(
        engine,
        {
            "patients": [patient("P1"), patient("P2")],
            "documents": [
                # Set A: v3 first in the table, v1 sent live; v2 draft; v3 replaces v1.
                document("A3", "P1", t, set_id="A", version=3),
                document(
                    "A1",
                    "P1",
                    t,
                    set_id="A",
                    version=1,
                    sent_live_at=t,
                    dmp_unique_id="2.25.live-a1",
                ),
                document("A2", "P1", t, set_id="A", version=2, status="draft"),
                # Set B: v1 acknowledged to us; v2 replaces our uniqueId.
                document("B1", "P1", t, set_id="B", version=1),
                document("B2", "P1", t, set_id="B", version=2),
                # Set C: v1 went out live, but its uniqueId was never recorded.
                document("C1", "P1", t, set_id="C", version=1, sent_live_at=t),
                document("C2", "P1", t, set_id="C", version=2),
                document("no-dmp", "P2", t),
                document("in-share", "P1", t, content=None, content_uri=good.as_uri()),
                document("outside-share", "P1", t, content=None, content_uri=outside.as_uri()),
                document(
                    "missing-file", "P1", t, content=None, content_uri=(tmp_path / "x.pdf").as_uri()
                ),
            ],
        },
        facts=facts,
        content_root=tmp_path / "share",
    )
    assert got["A1"].reason is Reason.SUPERSEDED_VERSION
    assert got["A2"].reason is Reason.NOT_VALIDATED
    assert got["A3"].decision == "selected"
    assert got["A3"].replaces_unique_id == "2.25.live-a1"
    assert got["B1"].reason is Reason.SUPERSEDED_VERSION
    assert got["B2"].replaces_unique_id == "2.25.ours-b1"
    # Never a second original beside a live-sent version it cannot name.
    assert got["C2"].reason is Reason.REPLACEMENT_TARGET_UNKNOWN
    assert got["no-dmp"].reason is Reason.NO_DMP
    assert got["in-share"].decision == "selected"
    assert got["outside-share"].reason is Reason.CONTENT_MISSING
    assert got["missing-file"].reason is Reason.CONTENT_MISSING


def test_inline_content_none_empty_or_there_decides_alike_on_each_backend(
    engine: sa.Engine,
) -> None:
    t = dt.datetime(2023, 5, 5, 12)
    got = _decisions(
        engine,
        {
            "patients": [patient("P1")],
            "documents": [
                document("nothing", "P1", t, content=None),
                document("empty", "P1", t, content=b""),
                document("there", "P1", t),
            ],
        },
    )
    assert got["nothing"].reason is Reason.CONTENT_MISSING
    assert got["empty"].reason is Reason.CONTENT_MISSING
    assert got["there"].decision == "selected"
    documents = sa.table("dpi_document", sa.column("document_id"), sa.column("content"))
    with engine.connect() as conn:
        present = dict(
            conn.execute(
                sa.select(documents.c.document_id, ps.blob_present(documents.c.content))
            ).all()
        )
    assert {k: bool(v) for k, v in present.items()} == {
        "nothing": False, "empty": True, "there": True
    }  # fmt: skip


def test_sqlite_tests_inline_content_without_reading_it() -> None:
    """SQLite loads a whole blob to test it for NULL (13.6 GB read on the 14 GB synthetic DPI,
    every selection, reruns too); `typeof()` reads only the record's header."""
    query = compile_decisions(load_rule(), AS_OF, selected_only=True)
    sql = str(query.compile(dialect=sqlite.dialect()))
    assert not re.search(r"\bcontent\s+IS\b", sql, re.IGNORECASE)
    assert "typeof(d.content) != 'null'" in sql


def test_inline_pdfs_are_checked_after_the_ledgers_facts(engine: sa.Engine) -> None:
    t = dt.datetime(2023, 5, 5, 12)
    broken = b"%PDF-1.4 cut short"
    # More than one chunk of document ids for the check (500 a query), corrupt ones in each.
    many = [
        document(f"m{n:04d}", "P1", t, content=broken if n % 400 == 7 else PDF) for n in range(1200)
    ]
    facts = InMemoryLedgerFacts(acked={"ours": {1: "2.25.ours"}})
    got = _decisions(
        engine,
        {
            "patients": [patient("P1"), patient("unqualified", identity_status="PROV")],
            "documents": [
                *many,
                document("ours", "P1", t, content=broken),
                document("no-trailer", "P1", t, content=broken, mime_type="Application/PDF"),
                document("no-author-either", "P1", t, content=broken, author_id=None),
                document("not-a-pdf", "P1", t, content=b"plain text", mime_type="text/plain"),
                document("aside", "unqualified", t, content=broken),
            ],
        },
        rule=load_rule(),
        facts=facts,
        identity_aside=True,
    )
    corrupt = {k for k, d in got.items() if d.reason is Reason.CONTENT_CORRUPT}
    assert corrupt == {"m0007", "m0407", "m0807", "no-trailer", "no-author-either"}
    assert got["ours"].reason is Reason.ALREADY_IN_DMP  # acknowledged first: never reread
    assert got["not-a-pdf"].reason is Reason.CONTENT_UNSUPPORTED_FORMAT
    assert got["aside"].reason is Reason.IDENTITY_NOT_QUALIFIED
    assert got["aside"].reason_identity_aside is Reason.CONTENT_CORRUPT
    assert sum(d.selected for d in got.values()) == 1197


def test_a_rerun_reads_no_pdf_the_dmp_acknowledged(engine: sa.Engine) -> None:
    """After a complete run every selected PDF is acknowledged: reading each one's last KiB
    again (a whole blob read) made a rerun of 100 000 documents take minutes."""
    t = dt.datetime(2023, 5, 5, 12)
    insert(engine, {"units": [unit(since=dt.date(2019, 3, 1))], "authors": [author()]})
    insert(
        engine,
        {"patients": [patient("P1")], "documents": [document(f"d{n}", "P1", t) for n in range(20)]},
    )
    checked: list[int] = []
    check = corrupt_pdfs_query()

    def count_checks(conn, clause, multiparams, params, options) -> None:
        if isinstance(clause, sa.Select) and clause.compare(check):
            checked.append(len((multiparams or [params])[0]["ids"]))

    sa.event.listen(engine, "before_execute", count_checks)
    try:
        first = list(decide(engine, load_rule(), AS_OF))
        assert checked == [20]
        checked.clear()
        facts = InMemoryLedgerFacts(acked={f"d{n}": {1: f"2.25.{n}"} for n in range(20)})
        again = list(decide(engine, load_rule(), AS_OF, facts=facts))
    finally:
        sa.event.remove(engine, "before_execute", count_checks)
    assert all(d.selected for d in first)
    assert all(d.reason is Reason.ALREADY_IN_DMP for d in again)
    assert checked == []


def test_file_checks(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-" + b"x" * 100 + b"%%EOF")
    trailer_far = tmp_path / "far.pdf"
    trailer_far.write_bytes(b"%PDF-%%EOF" + b"x" * 1024)

    def check(uri: str, *, pdf: bool = True, max_bytes: int = 5000) -> Reason | None:
        return check_file_content(uri, pdf=pdf, max_bytes=max_bytes, content_root=tmp_path)

    assert check(big.as_uri(), max_bytes=50) is Reason.CONTENT_TOO_LARGE
    assert check(big.as_uri(), max_bytes=500) is None
    assert check(trailer_far.as_uri()) is Reason.CONTENT_CORRUPT
    assert check(trailer_far.as_uri(), pdf=False) is None
    assert check("https://x/y.pdf") is Reason.CONTENT_MISSING


def test_the_query_binds_every_value_and_compiles_for_other_dialects() -> None:
    from sqlalchemy.dialects import mssql, oracle, postgresql, sqlite

    query = compile_decisions(load_rule(), AS_OF, identity_aside=True)
    for dialect in (sqlite.dialect(), postgresql.dialect(), oracle.dialect(), mssql.dialect()):
        sql = str(query.compile(dialect=dialect))
        for value in ("QUAL", "application/pdf", "2024", "%PDF"):
            assert value not in sql


def test_unreadable_dpi_is_a_data_source_error(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(DataSourceError, match="cannot be read"):
        list(decide(engine, load_rule(), AS_OF))


def test_a_created_at_that_is_no_date_gives_that_document_a_reason_and_the_others_go_on(
    sqlite_database,
) -> None:
    """SQLite only: a PostgreSQL timestamp column cannot hold such a value (a DPI view over a
    text column could, on any database; the engine reads the value as it is stored)."""
    engine = sqlite_database.engine()
    create_contract(engine)
    try:
        good = dt.datetime(2023, 5, 1, 9, 0)
        rows = {
            "patients": [patient("P1")],
            "documents": [
                document("ok", "P1", good),
                document("garbled", "P1", good),
                document("garbled-bio", "P1", good, kind="CR_BIO"),
                document("before", "P1", good - dt.timedelta(days=10)),
            ],
        }
        insert(engine, {"units": [unit(since=dt.date(2019, 3, 1))], "authors": [author()], **rows})
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE dpi_document SET created_at = CASE document_id "
                    "WHEN 'garbled' THEN '2023-13-45 99:00' ELSE 'yesterday' END "
                    "WHERE document_id LIKE 'garbled%'"
                )
            )
        got = {d.document_id: d for d in decide(engine, load_rule(), AS_OF)}
    finally:
        engine.dispose()
    assert got["garbled"].reason is Reason.INVALID_DOCUMENT_DATA
    assert got["garbled"].created_at is None
    assert got["garbled-bio"].reason is Reason.KIND_NOT_SELECTED  # its first date-free reason
    assert got["ok"].selected
    assert got["ok"].created_at == good
    assert got["before"].selected

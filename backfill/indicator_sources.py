"""How DS1.4 learns what dmp-backfill itself put in the DMP: the ledger's acknowledged documents.

The query runs inside the DPI's database and reads a temporary table `ds14_acked(document_id,
acked_at)` on the DPI connection (`indicator.load_acked`). Two ways to fill it:

- the ledger lives in another database (the usual case): its acknowledged pairs are streamed from
  the ledger and inserted on the DPI connection, in batches;
- the ledger lives in the same database as the DPI (same URL): one `INSERT … SELECT` from
  `bf_document` on the DPI connection, nothing crosses the network.

No ledger yet (nothing has run): the table stays empty and only the live feed counts; the note
returned says so.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from backfill.config import Settings
from backfill.databases import describe_url, open_engine
from backfill.indicator import ACKED_TABLE, Ds14, Month, compute_ds14, load_acked
from backfill.ledger import DocState, Ledger
from backfill.ledger.schema import bf_document
from backfill.selection import load_rule

__all__ = ["load_ledger_acks", "month_to_date_ds14", "same_database"]


def same_database(dpi_url: str, ledger_url: str) -> bool:
    """Both URLs name one database (and, on PostgreSQL, one search path)."""
    try:
        return make_url(dpi_url) == make_url(ledger_url)
    except sa.exc.ArgumentError:
        return False


def load_ledger_acks(conn: Connection, settings: Settings) -> str | None:
    """Fill the temporary table on the DPI connection `conn` from the ledger; a note, or None."""
    ledger_url = settings.ledger.url
    ledger = Ledger.open_existing(ledger_url)
    if ledger is None:
        load_acked(conn, [])
        return (
            f"no ledger at {describe_url(ledger_url)} yet: DS1.4 counts only what the live feed "
            "sent (sent_live_at)"
        )
    try:
        assert settings.dpi.url is not None
        if same_database(settings.dpi.url, ledger_url):
            load_acked(conn, [])
            conn.execute(
                ACKED_TABLE.insert().from_select(
                    ["document_id", "acked_at"],
                    sa.select(bf_document.c.document_id, bf_document.c.acked_at).where(
                        bf_document.c.state == DocState.ACKED.value,
                        bf_document.c.acked_at.is_not(None),
                    ),
                )
            )
        else:
            load_acked(conn, ((a.document_id, a.acked_at) for a in ledger.acked_documents()))
    finally:
        ledger.close()
    return None


def month_to_date_ds14(settings: Settings, now: dt.datetime) -> Ds14:
    """DS1.4 of the month of `now`, to date, with the ledger's acknowledged documents.

    What every run's summary shows before and after sending (DESIGN §12); the eligible kinds are
    those of the configured history rule, as for `backfill indicator`.
    """
    assert settings.dpi.url is not None
    kinds = load_rule(settings.rules.file, settings.live_feed.kinds).kinds
    engine = open_engine(settings.dpi.url, "DPI", check=False, must_exist=True)
    try:
        with engine.connect() as conn:
            load_ledger_acks(conn, settings)
            return compute_ds14(
                conn,
                Month.of(now),
                now=now,
                encounter_types=settings.indicator.encounter_types,
                eligible_kinds=kinds,
            )
    finally:
        engine.dispose()

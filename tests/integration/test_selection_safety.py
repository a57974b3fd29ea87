"""Never the wrong patient, never what was withdrawn (issue 16): one pinned case per safety reason.

On SQLite and PostgreSQL. The reference predicate (test_selection_reference) roams the same
rules; these cases pin each one where it is easiest to read.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backfill.selection import Reason, decide, load_rule
from backfill.selection.rules import MinorsPolicy
from connectors.dpi.contract import create_contract, dpi_document, dpi_stay
from tests.integration.selection_support import (
    author,
    document,
    insert,
    matricule,
    patient,
    stay,
    unit,
)

# 1 June 2026, noon in Paris.
AS_OF = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
WHEN = dt.datetime(2026, 1, 15, 12, 0)


@pytest.fixture
def engine(contract_engine: sa.Engine) -> sa.Engine:
    return contract_engine


def _decide(engine: sa.Engine, rows: dict, rule=None, **kwargs) -> dict[str, object]:
    units = rows.pop("units", [unit()])
    insert(engine, {"units": units, "authors": [author()], **rows})
    return {
        d.document_id: d
        for d in decide(engine, rule or load_rule(), kwargs.pop("as_of", AS_OF), **kwargs)
    }


def test_an_ins_held_by_several_ipps_blocks_every_one_of_them(engine: sa.Engine) -> None:
    shared = matricule("1800175123456")
    got = _decide(
        engine,
        {
            "patients": [
                patient("first", ins_matricule=shared),
                patient("second", ins_matricule=shared),
                patient("third", ins_matricule=shared, identity_status="VALI"),
                patient("alone"),
            ],
            "documents": [document(i, i, WHEN) for i in ("first", "second", "third", "alone")],
        },
    )
    assert got["first"].reason is Reason.INS_SHARED
    assert got["second"].reason is Reason.INS_SHARED
    # An earlier reason still comes first; the IPP still counts among the holders.
    assert got["third"].reason is Reason.IDENTITY_NOT_QUALIFIED
    assert got["alone"].selected


@pytest.mark.parametrize(
    ("body", "sex", "born", "expected"),
    [
        ("1800175123456", "M", dt.date(1980, 1, 1), None),
        ("1800175123456", "F", dt.date(1980, 1, 1), Reason.INS_TRAITS_INCONSISTENT),  # sex digit
        ("2800175123456", "M", dt.date(1980, 1, 1), Reason.INS_TRAITS_INCONSISTENT),
        ("1810175123456", "M", dt.date(1980, 1, 1), Reason.INS_TRAITS_INCONSISTENT),  # year
        ("1800275123456", "M", dt.date(1980, 1, 1), Reason.INS_TRAITS_INCONSISTENT),  # month
        ("1802075123456", "M", dt.date(1980, 1, 1), None),  # month 20: unknown month
        ("1803475123456", "M", dt.date(1980, 7, 9), None),  # 30 and up: fictitious month
        ("1805575123456", "M", dt.date(1980, 7, 9), None),  # 50 and up
        ("1809999123456", "M", dt.date(1980, 7, 9), None),  # 99: unknown
        ("7800175123456", "M", dt.date(1980, 1, 1), None),  # temporary number, male
        ("8800175123456", "M", dt.date(1980, 1, 1), Reason.INS_TRAITS_INCONSISTENT),
        ("1000175123456", "M", dt.date(2000, 1, 1), None),  # year 00
        ("1000175123456", "M", dt.date(1900, 1, 1), None),
        ("285062A123456", "F", dt.date(1985, 6, 30), None),  # Corsica
    ],
)
def test_what_the_matricule_encodes_must_match_the_traits(
    engine: sa.Engine, body: str, sex: str, born: dt.date, expected: Reason | None
) -> None:
    got = _decide(
        engine,
        {
            "patients": [patient("p", ins_matricule=matricule(body), sex=sex, birth_date=born)],
            "documents": [document("d", "p", WHEN)],
        },
    )
    assert got["d"].reason is expected


@pytest.mark.parametrize(
    ("environment", "oid", "expected"),
    [
        ("test", "1.2.250.1.213.1.4.10", None),
        ("test", "1.2.250.1.213.1.4.11", None),
        ("test", "1.2.250.1.213.1.4.8", Reason.INS_WRONG_ENVIRONMENT),
        ("test", "1.2.250.1.213.1.4.9", Reason.INS_WRONG_ENVIRONMENT),
        ("production", "1.2.250.1.213.1.4.8", None),
        ("production", "1.2.250.1.213.1.4.9", None),
        ("production", "1.2.250.1.213.1.4.10", Reason.INS_WRONG_ENVIRONMENT),
        ("production", "1.2.250.1.213.1.4.11", Reason.INS_WRONG_ENVIRONMENT),
    ],
)
def test_test_and_production_never_meet(
    engine: sa.Engine, environment: str, oid: str, expected: Reason | None
) -> None:
    got = _decide(
        engine,
        {"patients": [patient("p", ins_oid=oid)], "documents": [document("d", "p", WHEN)]},
        environment=environment,
    )
    assert got["d"].reason is expected


def test_local_opposition_blocks_by_default_or_lets_the_dmp_answer(engine: sa.Engine) -> None:
    rows = {
        "patients": [patient("opposed", dmp_opposition=True)],
        "documents": [document("d", "opposed", WHEN)],
    }
    assert _decide(engine, rows)["d"].reason is Reason.PATIENT_OPPOSED
    ask = load_rule().model_copy(update={"local_opposition": "ask_dmp"})
    got = {d.document_id: d for d in decide(engine, ask, AS_OF)}
    assert got["d"].selected


def test_withheld_withdrawn_sets_and_cancelled_stays_are_not_sent(engine: sa.Engine) -> None:
    got = _decide(
        engine,
        {
            "patients": [patient("p")],
            "stays": [
                stay("ok", "p", WHEN - dt.timedelta(days=2)),
                stay("gone", "p", WHEN - dt.timedelta(days=2), status="cancelled"),
            ],
            "documents": [
                document("withheld", "p", WHEN, withheld=True),
                document("not-withheld", "p", WHEN, withheld=False),
                # v1 validated, v2 validated, v3 cancelled: the whole set is withdrawn.
                document("w1", "p", WHEN, set_id="W", version=1),
                document("w2", "p", WHEN, set_id="W", version=2),
                document("w3", "p", WHEN, set_id="W", version=3, status="cancelled"),
                # A later draft is not a withdrawal: v1 stays sendable.
                document("k1", "p", WHEN, set_id="K", version=1),
                document("k2", "p", WHEN, set_id="K", version=2, status="draft"),
                # Cancelled in the middle, validated again after: the latest one goes.
                document("r1", "p", WHEN, set_id="R", version=1, status="cancelled"),
                document("r2", "p", WHEN, set_id="R", version=2),
                document("on-cancelled-stay", "p", WHEN, stay_id="gone"),
                document("on-stay", "p", WHEN, stay_id="ok"),
                document("on-unknown-stay", "p", WHEN, stay_id="nowhere"),
            ],
        },
    )
    decision = {k: v.decision for k, v in got.items()}
    assert decision == {
        "withheld": "document_withheld",
        "not-withheld": "selected",
        "w1": "superseded_version",
        "w2": "set_withdrawn",
        "w3": "not_validated",
        "k1": "selected",
        "k2": "not_validated",
        "r1": "not_validated",
        "r2": "selected",
        "on-cancelled-stay": "stay_cancelled",
        "on-stay": "selected",
        "on-unknown-stay": "selected",
    }


MINORS = MinorsPolicy(
    default="send",
    sensitive="hold_back",
    sensitive_units=["PSY"],
    units={"PEDIA": "send", "ADO": "invisible_to_legal_representatives"},
    practice_settings={"HAD": "invisible_to_legal_representatives"},
)


def test_minors_get_their_units_policy(engine: sa.Engine) -> None:
    rule = load_rule().model_copy(update={"minors": MINORS})
    # 18 on 1 June 2026 (as_of's Paris day) is an adult; born a day later is a minor.
    adult, minor = dt.date(2008, 6, 1), dt.date(2008, 6, 2)
    units = [
        unit("PSY"),
        unit("PEDIA"),
        unit("ADO"),
        {**unit("HOME"), "practice_setting_code": "HAD"},
        unit("MED"),
    ]
    documents = []
    for who in ("adult", "minor"):
        documents += [
            document(f"{who}-{u['unit_code']}", who, WHEN, unit_code=u["unit_code"]) for u in units
        ]
    got = _decide(
        engine,
        {
            "units": units,
            "patients": [
                patient("adult", birth_date=adult, ins_matricule=matricule("1080675123456")),
                patient("minor", birth_date=minor, ins_matricule=matricule("1080675123457")),
            ],
            "documents": documents,
        },
        rule=rule,
    )
    for u in units:
        assert got[f"adult-{u['unit_code']}"].selected
        assert not got[f"adult-{u['unit_code']}"].hide_from_legal_rep
        assert not got[f"adult-{u['unit_code']}"].minor
    assert got["minor-PSY"].reason is Reason.MINOR_HELD_BACK
    assert got["minor-PEDIA"].selected
    assert not got["minor-PEDIA"].hide_from_legal_rep
    assert got["minor-ADO"].selected
    assert got["minor-ADO"].hide_from_legal_rep
    assert got["minor-HOME"].selected
    assert got["minor-HOME"].hide_from_legal_rep
    assert got["minor-MED"].selected
    assert not got["minor-MED"].hide_from_legal_rep
    assert all(got[f"minor-{u['unit_code']}"].minor for u in units)


def test_a_dpi_view_without_the_optional_columns_still_works(database) -> None:
    """`withheld` and `hospitalisation` were added to the contract later: a DPI mapped before
    (views without them) is read as if both were NULL, by selection and by the reader."""
    from connectors.dpi.reader import read_documents

    engine = database.engine()
    try:
        create_contract(engine)
        insert(
            engine,
            {
                "units": [unit()],
                "authors": [author()],
                "patients": [patient("p")],
                "stays": [stay("s", "p", WHEN - dt.timedelta(days=1))],
                "documents": [document("d", "p", WHEN, stay_id="s", withheld=True)],
            },
        )
        with engine.begin() as conn:
            for table, optional in ((dpi_document, "withheld"), (dpi_stay, "hospitalisation")):
                kept = ", ".join(c.name for c in table.c if c.name != optional)
                conn.execute(sa.text(f"ALTER TABLE {table.name} RENAME TO {table.name}_base"))
                conn.execute(
                    sa.text(f"CREATE VIEW {table.name} AS SELECT {kept} FROM {table.name}_base")
                )
        got = {d.document_id: d for d in decide(engine, load_rule(), AS_OF)}
        assert got["d"].selected  # withheld is not in the view: nothing is withheld
        [read] = read_documents(engine, [("d", None)])
        assert read.error is None
        assert read.document is not None
        assert read.document.stay is not None
        assert read.document.stay.hospitalisation is None
    finally:
        engine.dispose()


def test_build_selected_hides_from_legal_representatives_and_checks_the_environment(
    engine: sa.Engine,
) -> None:
    from backfill.documents import build_selected
    from cda import codes
    from cda.examples import ESTABLISHMENT

    insert(
        engine,
        {
            "units": [unit()],
            "authors": [author()],
            "patients": [
                patient("test-ins"),
                patient("prod-ins", ins_oid="1.2.250.1.213.1.4.8"),
                patient("recup", identity_status="RECUP"),
            ],
            "documents": [
                document("hidden", "test-ins", WHEN),
                document("plain", "test-ins", WHEN, set_id="other"),
                document("prod", "prod-ins", WHEN),
                document("recup", "recup", WHEN),
            ],
        },
    )
    wanted = [(d, None) for d in ("hidden", "plain", "prod", "recup")]
    outcomes = {
        o.document_id: o
        for o in build_selected(
            engine, wanted, ESTABLISHMENT, hidden_from_legal_rep={"hidden"}, environment="test"
        )
    }
    hidden, plain = outcomes["hidden"].built, outcomes["plain"].built
    assert hidden is not None
    assert plain is not None
    assert codes.INVISIBLE_REPRESENTANTS_LEGAUX in hidden.entry.confidentiality
    assert codes.INVISIBLE_REPRESENTANTS_LEGAUX not in plain.entry.confidentiality
    assert outcomes["prod"].reason == "ins_wrong_environment"
    assert outcomes["recup"].reason == "identity_not_qualified"

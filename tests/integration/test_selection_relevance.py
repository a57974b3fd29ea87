"""Per-kind refinements, pinned on SQLite and PostgreSQL: which documents take one of the N places,
how the limit meets the ledger's facts and the file checks, and codes the DPI does not know."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.errors import RuleError
from backfill.selection import InMemoryLedgerFacts, Reason, Rule, decide
from backfill.selection.rules import KindRefinement, parse_rule
from tests.integration.selection_support import PDF, author, document, insert, patient, unit

AS_OF = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
BEYOND = Reason.BEYOND_KIND_LIMIT


@pytest.fixture
def engine(contract_engine: sa.Engine) -> sa.Engine:
    return contract_engine


def _rule(**consult: object) -> Rule:
    return Rule(
        name="mine",
        kinds=["LDL", "CR_CONSULT"],
        depth_years=5,
        per_kind={"CR_CONSULT": KindRefinement(**consult)},  # type: ignore[arg-type]
    )


def _consult(document_id: str, day: int, ipp: str = "P1", **overrides: object) -> dict[str, object]:
    when = dt.datetime(2026, 10, day, 9, 0)
    return document(document_id, ipp, when, kind="CR_CONSULT", **overrides)


def _decide(engine: sa.Engine, rule: Rule, documents: list, **kwargs: object) -> dict:
    insert(
        engine,
        {
            "patients": [patient("P1"), patient("P2")],
            "units": [unit("U1"), unit("U2") | {"practice_setting_code": "AMBULATOIRE"}],
            "authors": [author("A1"), author("A2", specialty_code="G15_10/SM04")],
            "documents": documents,
        },
    )
    return {d.document_id: d.reason for d in decide(engine, rule, AS_OF, **kwargs)}


def test_only_documents_otherwise_selected_take_a_place(engine: sa.Engine) -> None:
    got = _decide(
        engine,
        _rule(latest=2),
        [
            _consult("draft", 20, status="draft"),
            _consult("live", 19, sent_live_at=dt.datetime(2026, 10, 19, 12)),
            _consult("v1", 18, set_id="S"),
            _consult("v2", 17, set_id="S", version=2),  # supersedes v1
            _consult("kept", 16),
            _consult("beyond", 15),
            _consult("other-patient", 14, ipp="P2"),
            document("letter", "P1", dt.datetime(2026, 10, 1, 9), kind="LDL"),
        ],
    )
    assert got == {
        "draft": Reason.NOT_VALIDATED,
        "live": Reason.ALREADY_IN_DMP,
        "v1": Reason.SUPERSEDED_VERSION,
        "v2": None,
        "kept": None,
        "beyond": BEYOND,
        "other-patient": None,  # per patient
        "letter": None,  # per kind: LDL has no limit
    }


def test_ties_on_created_at_go_to_the_greater_document_id(engine: sa.Engine) -> None:
    got = _decide(
        engine,
        _rule(latest=2),
        [_consult(name, 10) for name in ("a-b", "ab", "A", "b")],
    )
    # Binary order, whatever the database's collation: "b" > "ab" > "a-b" > "A".
    assert got == {"b": None, "ab": None, "a-b": BEYOND, "A": BEYOND}


def test_ledger_facts_and_file_checks_come_after_the_limit(
    engine: sa.Engine, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(b"not a pdf")
    good = tmp_path / "good.pdf"
    good.write_bytes(PDF)
    facts = InMemoryLedgerFacts(acked={"ours": {1: "2.25.1"}})
    got = _decide(
        engine,
        _rule(latest=2),
        [
            _consult("ours", 20),  # acknowledged to us: keeps its place
            _consult("broken", 19, content=None, content_uri=corrupt.as_uri()),
            _consult("third", 18),
            _consult("fourth", 17, content=None, content_uri=good.as_uri()),
            _consult("fifth", 16, content=None, content_uri=corrupt.as_uri()),
        ],
        facts=facts,
        content_root=tmp_path,
    )
    assert got == {
        "ours": Reason.ALREADY_IN_DMP,
        "broken": Reason.CONTENT_CORRUPT,  # its place is not given to the third
        "third": BEYOND,
        "fourth": BEYOND,
        "fifth": Reason.CONTENT_CORRUPT,  # the lowest-ranked reason that applies
    }


def test_depth_and_filters_per_kind(engine: sa.Engine) -> None:
    three_years_ago = dt.datetime(2023, 10, 1, 9)
    got = _decide(
        engine,
        _rule(
            depth_years=2, exclude_practice_settings=["AMBULATOIRE"], specialties=["G15_10/SM04"]
        ),
        [
            _consult("specialist", 3, author_id="A2"),
            _consult("gp", 4, author_id="A1"),
            _consult("no-author", 5, author_id=None),
            _consult("outpatient-unit", 6, author_id="A2", unit_code="U2"),
            _consult("no-unit", 7, author_id="A2", unit_code=None),
            document("old", "P1", three_years_ago, kind="CR_CONSULT", author_id="A2"),
            document("old-letter", "P1", three_years_ago, kind="LDL"),
        ],
    )
    assert got == {
        "specialist": None,
        "gp": Reason.NOT_RELEVANT,  # A1 is in general practice (G15_10/SM26)
        "no-author": Reason.AUTHOR_UNKNOWN,  # ranked before not_relevant
        "outpatient-unit": Reason.NOT_RELEVANT,
        "no-unit": None,  # no setting: not excluded
        "old": Reason.OLDER_THAN_DEPTH,
        "old-letter": None,  # LDL keeps the rule's 5 years
    }


def test_codes_the_dpi_does_not_have_are_refused_before_any_row(engine: sa.Engine) -> None:
    rule = parse_rule(
        'name = "mine"\nkinds = ["CR_CONSULT"]\ndepth_years = 5\n[per_kind.CR_CONSULT]\n'
        'units = ["U1", "U9"]\nexclude_practice_settings = ["NOWHERE"]\n',
        "selectors/mine.toml",
    )
    with pytest.raises(RuleError) as caught:
        _decide(engine, rule, [_consult("c", 1)])
    message = str(caught.value)
    assert message.startswith("selectors/mine.toml: names codes this DPI does not know:")
    assert "per_kind.CR_CONSULT.units[1]: unknown unit 'U9'" in message
    assert "the DPI has: U1, U2" in message
    assert "exclude_practice_settings[0]: unknown practice setting 'NOWHERE'" in message
    assert caught.value.exit_code == 2
    # A rule built in code is named by its name.
    with pytest.raises(RuleError, match=r"^rule mine: names codes"):
        list(decide(engine, _rule(specialties=["G15_10/SM99"]), AS_OF))

"""Rule files: the shipped ones load; every kind of mistake names the file and the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backfill.errors import RuleError
from backfill.resources import rule_file_names
from backfill.selection.reasons import Reason
from backfill.selection.rules import load_rule, parse_rule
from connectors.dpi.contract import DEFAULT_LIVE_FEED_KINDS

GOOD = 'name = "mine"\nkinds = ["LDL"]\ndepth_years = 5\n'
# A rule with a kind to refine, and the start of its [per_kind.CR_CONSULT] table.
TWO = 'name = "mine"\nkinds = ["LDL", "CR_CONSULT"]\ndepth_years = 5\n'
CONSULT = TWO + "[per_kind.CR_CONSULT]\n"


def test_shipped_rules_load_by_name_with_or_without_suffix() -> None:
    assert {
        "history-5y.toml",
        "history-20y.toml",
        "history-5y-focused.toml",
        "catch-up.toml",
    } <= set(rule_file_names())
    assert load_rule().name == "history-5y"
    assert load_rule("history-20y").depth_years == 20
    assert load_rule("history-20y.toml").depth_years == 20
    catch_up = load_rule("catch-up")
    assert catch_up.is_catch_up
    assert catch_up.depth_years is None


def test_rule_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    rule = load_rule(path)
    assert rule.name == "mine"
    assert rule.identity_statuses == ["QUAL"]
    assert rule.media_types == ["application/pdf"]
    assert rule.respect_computerization is True
    assert rule.digest == load_rule(str(path)).digest


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (GOOD + "colour = 1\n", "colour", "unknown key"),
        ('name = "x"\nkinds = ["LDL", "XRAY"]\ndepth_years = 5\n', "kinds[1]", "unknown kind"),
        ('name = "x"\nkinds = ["LDL"]\ndepth_years = -1\n', "depth_years", "greater than"),
        ('name = "x"\nkinds = ["LDL"]\ndepth_years = "5"\n', "depth_years", "integer"),
        ('name = "x"\nkinds = ["LDL"]\ndepth_years = 5.0\n', "depth_years", "integer"),
        (GOOD + "respect_computerization = 1\n", "respect_computerization", "boolean"),
        (GOOD + 'identity_statuses = ["QUAL", "OK"]\n', "identity_statuses[1]", "identity status"),
        (GOOD + 'identity_statuses = ["QUAL", "RECUP"]\n', "identity_statuses[1]", "only QUAL"),
        (GOOD + 'identity_statuses = ["VALI"]\n', "identity_statuses[0]", "only QUAL"),
        (GOOD + 'identity_statuses = ["PROV"]\n', "identity_statuses[0]", "only QUAL"),
        ('name = "x"\nkinds = ["LDL"]\ndepth_years = 21\n', "depth_years", "at most 20"),
        (GOOD + 'local_opposition = "ignore"\n', "local_opposition", "block"),
        (GOOD + '[minors]\ndefault = "maybe"\n', "minors.default", "hold_back"),
        (GOOD + '[minors]\nunits = { PSY = "hide" }\n', "minors.units.PSY", "hold_back"),
        (GOOD + '[minors]\nsensitive_units = "PSY"\n', "minors.sensitive_units", "list"),
        (GOOD + 'mode = "catch-up"\n', "depth_years", "catch-up rule has no depth"),
        ('name = "x"\nkinds = ["LDL"]\n', "depth_years", "required"),
        ('name = "x"\nkinds = []\ndepth_years = 5\n', "kinds", "at least 1"),
        ('kinds = ["LDL"]\ndepth_years = 5\n', "name", "required"),
        (GOOD + "max_content_bytes = 0\n", "max_content_bytes", "greater than"),
        (GOOD + 'media_types = ["PDF"]\n', "media_types[0]", "pattern"),
        # Per-kind refinements (issue 15).
        (TWO + "[per_kind.XRAY]\nlatest = 1\n", "per_kind.XRAY", "unknown kind 'XRAY'"),
        (TWO + "[per_kind.CR_BIO]\nlatest = 1\n", "per_kind.CR_BIO", "not in kinds"),
        (CONSULT + "depth_years = 21\n", "per_kind.CR_CONSULT.depth_years", "at most 20"),
        (CONSULT + "depth_years = -1\n", "per_kind.CR_CONSULT.depth_years", "greater than"),
        (CONSULT + 'depth_years = "2"\n', "per_kind.CR_CONSULT.depth_years", "integer"),
        (CONSULT + "latest = 0\n", "per_kind.CR_CONSULT.latest", "greater than"),
        (CONSULT + "latest = 2.5\n", "per_kind.CR_CONSULT.latest", "integer"),
        (CONSULT + "lastest = 3\n", "per_kind.CR_CONSULT.lastest", "unknown key"),
        (CONSULT + "units = []\n", "per_kind.CR_CONSULT.units", "at least 1"),
        (CONSULT + 'units = "CARDIO"\n', "per_kind.CR_CONSULT.units", "list"),
        (CONSULT + 'specialties = [""]\n', "per_kind.CR_CONSULT.specialties[0]", "at least 1"),
        (
            CONSULT + 'units = ["A"]\nexclude_units = ["B"]\n',
            "per_kind.CR_CONSULT.exclude_units",
            "not both",
        ),
        (
            CONSULT + 'practice_settings = ["X"]\nexclude_practice_settings = ["Y"]\n',
            "per_kind.CR_CONSULT.exclude_practice_settings",
            "not both",
        ),
        (
            'name = "c"\nmode = "catch-up"\nkinds = ["CRH"]\n[per_kind.CRH]\ndepth_years = 1\n',
            "per_kind.CRH.depth_years",
            "catch-up rule has no depth",
        ),
    ],
)
def test_mistakes_name_file_and_key(text: str, key: str, words: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(text, "selectors/mine.toml")
    message = str(caught.value)
    assert message.startswith("selectors/mine.toml: ")
    assert f"\n  {key}: " in message
    assert words in message
    assert caught.value.exit_code == 2


def test_not_toml_and_unknown_names() -> None:
    with pytest.raises(RuleError, match=r"x\.toml: not valid TOML"):
        parse_rule("name = ", "x.toml")
    with pytest.raises(RuleError, match=r"not a shipped rule.*history-5y"):
        load_rule("history-99y")


# The contract order of DESIGN §5 and its appended reasons, written out: reasons are only ever
# appended, so this list only ever grows at its end.
CONTRACT_ORDER = [
    "kind_not_selected",
    "not_validated",
    "superseded_version",
    "already_in_dmp",
    "future_dated",
    "older_than_depth",
    "before_computerization",
    "patient_deceased",
    "patient_opposed",
    "identity_not_qualified",
    "identity_doubtful",
    "ins_missing",
    "ins_invalid",
    "ins_traits_incomplete",
    "no_dmp",
    "content_missing",
    "content_unsupported_format",
    "content_too_large",
    "content_corrupt",
    "author_unknown",
    "visibility_conflict",
    "replacement_target_unknown",
    "ins_shared",
    "ins_traits_inconsistent",
    "ins_wrong_environment",
    "document_withheld",
    "set_withdrawn",
    "stay_cancelled",
    "minor_held_back",
    "not_relevant",
    "beyond_kind_limit",
    "invalid_document_data",
]


def test_reasons_are_ranked_in_contract_order() -> None:
    assert [r.value for r in Reason] == CONTRACT_ORDER
    assert {r.value: r.rank for r in Reason} == {
        code: rank for rank, code in enumerate(CONTRACT_ORDER, start=1)
    }


def test_the_documented_reason_list_is_the_code_s() -> None:
    """docs/selection.md's table of reasons, in order, with their numbers, is the contract's."""
    text = (Path(__file__).parents[2] / "docs" / "selection.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    assert [(int(n), code) for n, code in rows] == [(r.rank, r.value) for r in Reason]


def test_only_qualified_identities_and_at_most_twenty_years() -> None:
    rule = parse_rule(GOOD, "x.toml")
    assert rule.identity_statuses == ["QUAL"]
    assert parse_rule('name = "x"\nkinds = ["LDL"]\ndepth_years = 20\n', "x").depth_years == 20


def test_advised_against_kinds_in_a_history_rule_are_a_warning_not_an_error() -> None:
    history = parse_rule('name = "x"\nkinds = ["LDL", "CR_BIO", "ORDO"]\ndepth_years = 5\n', "x")
    assert any("CR_BIO, ORDO" in w and "advises against" in w for w in history.warnings)
    catch_up = parse_rule('name = "c"\nmode = "catch-up"\nkinds = ["ORDO", "CR_IMG"]\n', "c")
    assert not any("advises against" in w for w in catch_up.warnings)
    for name in ("history-5y", "history-20y", "history-5y-focused", "catch-up"):
        assert load_rule(name).warnings == [], name


def test_catch_up_takes_the_live_feeds_kinds_and_history_does_not() -> None:
    assert load_rule("catch-up").kinds == list(DEFAULT_LIVE_FEED_KINDS)
    assert {"ORDO", "CR_BIO", "CR_IMG"} <= set(load_rule("catch-up").kinds)
    assert load_rule("catch-up", ["LDL", "ORDO"]).kinds == ["LDL", "ORDO"]
    for name in ("history-5y", "history-20y"):
        assert not {"ORDO", "CR_BIO", "CR_IMG"} & set(load_rule(name).kinds), name
    mine = parse_rule('name = "c"\nmode = "catch-up"\nkinds = "live_feed"\n', "c", ["CRH"])
    assert mine.kinds == ["CRH"]


def test_minors_policy_precedence() -> None:
    rule = parse_rule(
        GOOD
        + "[minors]\n"
        + 'default = "send"\nsensitive = "hold_back"\nsensitive_units = ["PSY", "CPEF"]\n'
        + 'units = { CPEF = "invisible_to_legal_representatives" }\n'
        + 'practice_settings = { HAD = "invisible_to_legal_representatives" }\n',
        "x",
    )
    minors = rule.minors
    assert minors.policy_for("PSY", "HAD") == "hold_back"  # sensitive unit before setting
    assert minors.policy_for("CPEF", None) == "invisible_to_legal_representatives"  # unit first
    assert minors.policy_for("MED", "HAD") == "invisible_to_legal_representatives"
    assert minors.policy_for("MED", "ETABLISSEMENT") == "send"
    assert minors.policy_for(None, None) == "send"


def test_the_focused_rule_refines_consultations_only() -> None:
    rule = load_rule("history-5y-focused")
    assert rule.kinds == ["LDL", "CRH", "CRO", "CR_CONSULT"]
    assert rule.depth_years == 5
    assert [rule.depth_for(k) for k in rule.kinds] == [5, 5, 5, 2]
    consult = rule.per_kind["CR_CONSULT"]
    assert consult.latest == 3
    assert consult.exclude_specialties == ["G15_10/SM26", "G15_10/SM53", "G15_10/SM54"]
    assert consult.filters == [
        ("exclude_specialties", "dpi_author.specialty_code", consult.exclude_specialties)
    ]
    assert rule.source == "selectors/history-5y-focused.toml"


def test_per_kind_refinements_parse_and_name_their_source(tmp_path: Path) -> None:
    rule = parse_rule(
        CONSULT
        + 'depth_years = 20\nunits = ["CARDIO"]\nexclude_specialties = ["G15_10/SM26"]\n'
        + 'practice_settings = ["ETABLISSEMENT"]\nlatest = 1\n',
        "x.toml",
    )
    assert rule.depth_for("CR_CONSULT") == 20
    assert rule.depth_for("LDL") == 5
    assert [key for key, _, _ in rule.per_kind["CR_CONSULT"].filters] == [
        "units",
        "exclude_specialties",
        "practice_settings",
    ]
    assert rule.source == "x.toml"
    path = tmp_path / "mine.toml"
    path.write_text(CONSULT + "latest = 2\n")
    assert load_rule(path).source == str(path)


def test_digests_of_rules_without_refinements_are_unchanged() -> None:
    """The runs recorded before per-kind refinements existed keep comparable rule digests."""
    assert load_rule("history-5y").digest == "008dc759c3742eda"
    assert load_rule("history-20y").digest == "d7c59950a37510cb"
    assert load_rule("catch-up").digest == "9f4fc98fb19e7e5c"
    plain = parse_rule(TWO, "x")
    refined = parse_rule(CONSULT + "latest = 3\n", "x")
    assert plain.digest != refined.digest

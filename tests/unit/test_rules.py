"""Rule files: the shipped ones load; every kind of mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.errors import RuleError
from backfill.resources import rule_file_names
from backfill.selection.reasons import Reason
from backfill.selection.rules import load_rule, parse_rule

GOOD = 'name = "mine"\nkinds = ["LDL"]\ndepth_years = 5\n'


def test_shipped_rules_load_by_name_with_or_without_suffix() -> None:
    assert {"history-5y.toml", "history-20y.toml", "catch-up.toml"} <= set(rule_file_names())
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
        (GOOD + 'mode = "catch-up"\n', "depth_years", "catch-up rule has no depth"),
        ('name = "x"\nkinds = ["LDL"]\n', "depth_years", "required"),
        ('name = "x"\nkinds = []\ndepth_years = 5\n', "kinds", "at least 1"),
        ('kinds = ["LDL"]\ndepth_years = 5\n', "name", "required"),
        (GOOD + "max_content_bytes = 0\n", "max_content_bytes", "greater than"),
        (GOOD + 'media_types = ["PDF"]\n', "media_types[0]", "pattern"),
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


def test_reasons_are_ranked_in_contract_order() -> None:
    assert [r.rank for r in Reason] == list(range(1, 23))
    assert Reason.KIND_NOT_SELECTED.rank == 1
    assert Reason.CONTENT_CORRUPT.rank == 19
    assert Reason.VISIBILITY_CONFLICT.rank == 21
    assert Reason.REPLACEMENT_TARGET_UNKNOWN.rank == 22

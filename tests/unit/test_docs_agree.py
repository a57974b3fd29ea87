"""The documentation says what the code does: the configuration reference is the settings model,
the reason table is the `Reason` enum, and every "N reasons" in the docs is the real count."""

from __future__ import annotations

import re
from pathlib import Path

from backfill.config_reference import MARKER, render
from backfill.selection.reasons import Reason

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_configuration_reference_is_generated_from_the_settings_model() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert MARKER in text, "docs/configuration.md lost its generation marker"
    assert text.split(MARKER, 1)[1] == render().split(MARKER, 1)[1], (
        "docs/configuration.md is out of date: run `make docs`"
    )


def test_every_setting_is_in_the_reference() -> None:
    from backfill.config import Settings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for section, field in Settings.model_fields.items():
        assert f"### `[{section}]`" in text
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert f"`BACKFILL_{section.upper()}_{key.upper()}`" in text


def test_the_reason_table_of_selection_md_is_the_reason_enum_in_order() -> None:
    text = (DOCS / "selection.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    assert [(int(rank), name) for rank, name in rows] == [(r.rank, r.value) for r in Reason]


def test_every_count_of_reasons_in_the_docs_is_the_real_one() -> None:
    for path in [ROOT / "README.md", *DOCS.glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        for count in re.findall(r"\b(\d+) (?:reasons|reason codes)\b", text):
            assert int(count) == len(Reason), f"{path.name} says {count} reasons"

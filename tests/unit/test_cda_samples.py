"""`samples/cda/` holds documents the builder produces from the fixed inputs of `cda.examples`.

Rebuilding them must give the same bytes: a change to the builder shows up here, and the samples
are refreshed with `python -m cda.examples samples/cda`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cda.build import build_document
from cda.examples import ESTABLISHMENT, example_documents

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "cda"


@pytest.mark.parametrize("name", sorted(example_documents()))
def test_sample_is_what_the_builder_produces(specs, name: str) -> None:
    document, patient = example_documents()[name]
    built = build_document(document, patient, ESTABLISHMENT)
    stored = (SAMPLES / f"{name}.xml").read_bytes()
    assert built.xml == stored, (
        f"samples/cda/{name}.xml is stale: run python -m cda.examples samples/cda"
    )


def test_no_stray_samples() -> None:
    assert {p.stem for p in SAMPLES.glob("*.xml")} == set(example_documents())

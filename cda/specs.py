"""Where the official schemas live: the CI-SIS CDA kit (`cda-spec/`) and the XDS schemas (`xds-spec/`).

They are data read at run and test time, never copied into the package. The folder holding
both is the `shared_dir` argument, else the `BACKFILL_SHARED_DIR` environment variable (the
Makefile sets it to `../shared` beside the checkout) — nowhere else: the schemas decide what is
valid, so they are never picked up from wherever the command happens to run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SHARED_DIR_ENV", "SpecPaths", "SpecsNotFound", "find_specs"]

SHARED_DIR_ENV = "BACKFILL_SHARED_DIR"


class SpecsNotFound(FileNotFoundError):
    """The schema folders are not where they were looked for."""


@dataclass(frozen=True, slots=True)
class SpecPaths:
    """Entry points of the official schemas inside one shared folder."""

    root: Path

    @property
    def cda_spec(self) -> Path:
        return self.root / "cda-spec"

    @property
    def cda_xsd(self) -> Path:
        return self.cda_spec / "infrastructure" / "cda" / "CDA_extended.xsd"

    @property
    def schematron_dir(self) -> Path:
        return self.cda_spec / "schematrons" / "profils" / "structurationMinimale"

    @property
    def schematron(self) -> Path:
        return self.schematron_dir / "ASIP-STRUCT-MIN-StrucMin.sch"

    @property
    def value_sets(self) -> Path:
        return self.cda_spec / "jeuxDeValeurs"

    @property
    def xds_spec(self) -> Path:
        return self.root / "xds-spec"

    @property
    def xds_repository_xsd(self) -> Path:
        return self.xds_spec / "schema" / "IHE" / "XDS.b_DocumentRepository.xsd"

    @property
    def soap_envelope_xsd(self) -> Path:
        return self.xds_spec / "schema" / "w3c" / "soap-1.2-envelope.xsd"

    @property
    def rs_xsd(self) -> Path:
        return self.xds_spec / "schema" / "ebRS" / "rs.xsd"


def _looks_like_shared(path: Path) -> bool:
    return (path / "cda-spec").is_dir() and (path / "xds-spec").is_dir()


def find_specs(shared_dir: str | os.PathLike[str] | None = None) -> SpecPaths:
    """Locate the shared folder; raise SpecsNotFound with what was tried and how to fix it."""
    explicit = shared_dir if shared_dir is not None else os.environ.get(SHARED_DIR_ENV)
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if _looks_like_shared(path):
            return SpecPaths(path)
        raise SpecsNotFound(
            f"{path} does not hold cda-spec/ and xds-spec/ (set {SHARED_DIR_ENV} to the folder "
            "that holds both)"
        )
    raise SpecsNotFound(
        f"the CDA and XDS schemas are not configured: set {SHARED_DIR_ENV} to the folder that "
        "holds cda-spec/ and xds-spec/ (make sets it to ../shared beside the checkout), or pass "
        "--shared-dir to backfill validate"
    )

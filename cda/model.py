"""What the builder needs to write one document: the establishment, the patient, the people, the stay.

Plain frozen values filled from the DPI by the engine; nothing here touches a database or a file.
Times are naive Europe/Paris wall-clock times, as DPIs store them (see `cda.timefmt`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cda.errors import InvalidIdentity
from cda.ins import INS, INS_OIDS, InsTraits

__all__ = ["Author", "DocumentInput", "Establishment", "Patient", "Stay", "Unit"]


@dataclass(frozen=True, slots=True)
class Establishment:
    """The sender: custodian of the documents and XDS author institution."""

    finess_geo: str
    name: str
    oid_root: str
    facility_type_code: str = "SA01"

    @property
    def struct_id(self) -> str:
        """Struct_IdNat: "1" + FINESS, under 1.2.250.1.71.4.2.2."""
        return "1" + self.finess_geo

    @property
    def ipp_oid(self) -> str:
        return f"{self.oid_root}.1"

    @property
    def stay_oid(self) -> str:
        return f"{self.oid_root}.2"

    @property
    def document_set_oid(self) -> str:
        return f"{self.oid_root}.3"

    @property
    def source_oid(self) -> str:
        """XDS SubmissionSet.sourceId: this sending system."""
        return f"{self.oid_root}.4"


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient as the DPI knows them: local IPP, INS as stored, INS traits, used names.

    `identity_status` is the RNIV status; the builder writes an INS only for QUAL (and neither
    doubtful nor fictitious): None, the default, is refused like any other status.
    """

    ipp: str
    ins_matricule: str | None
    ins_oid: str | None
    traits: InsTraits
    used_family_name: str | None = None
    used_given_name: str | None = None
    identity_status: str | None = None
    identity_doubtful: bool = False
    identity_fictitious: bool = False

    def require_qualified(self) -> None:
        """InvalidIdentity unless the identity is QUAL, neither doubtful nor fictitious (RNIV)."""
        if self.identity_status != "QUAL":
            raise InvalidIdentity(
                "identity_not_qualified",
                f"patient {self.ipp}: only a qualified identity (QUAL) may feed the DMP, "
                f"not {self.identity_status or 'no status'}",
            )
        if self.identity_doubtful or self.identity_fictitious:
            raise InvalidIdentity(
                "identity_doubtful", f"patient {self.ipp}: the identity is doubtful or fictitious"
            )

    def ins(self) -> INS:
        """The checked INS; InvalidIdentity (ins_missing / ins_invalid) when it cannot be used."""
        if not self.ins_matricule or not self.ins_oid or self.ins_oid not in INS_OIDS:
            raise InvalidIdentity(
                "ins_missing", "the patient has no INS matricule under one of the four INS OIDs"
            )
        return INS(self.ins_matricule, self.ins_oid)

    def __repr__(self) -> str:
        # Identity data stays out of reprs that may reach a log.
        return f"Patient(ipp={self.ipp!r}, <identity redacted>)"


@dataclass(frozen=True, slots=True)
class Author:
    """A health professional (author or legal authenticator) and how the DMP can identify them.

    The DMP's identifier scheme for people (PS_IdNat, under 1.2.250.1.71.4.2.1) accepts an RPPS
    ("8" + RPPS), an ADELI number ("0" + ADELI) or the establishment's own staff number
    ("3" + FINESS + "/" + number); `cda.entry.ps_identifier` picks the first the DPI knows.
    """

    rpps: str | None
    family_name: str
    given_name: str | None = None
    specialty_code: str | None = None
    author_id: str | None = None
    adeli: str | None = None
    staff_number: str | None = None
    function_code: str | None = None
    """JDV_J47 function of the author for the document (e.g. ATTPHYS), when the DPI knows it."""


@dataclass(frozen=True, slots=True)
class Unit:
    """The care unit that produced the document, and its JDV_J04 practice setting."""

    unit_code: str
    name: str | None = None
    practice_setting_code: str = "ETABLISSEMENT"


@dataclass(frozen=True, slots=True)
class Stay:
    """The stay or visit a document belongs to."""

    stay_id: str
    encounter_type: str
    admitted_at: dt.datetime
    discharged_at: dt.datetime | None = None
    hospitalisation: str | None = None
    """For an IMP stay: `full` or `partial` (day or night hospital); None when not said."""


@dataclass(frozen=True, slots=True)
class DocumentInput:
    """One document version of the DPI with everything needed to write its CDA and XDS entry."""

    document_id: str
    set_id: str
    version: int
    kind: str
    title: str
    created_at: dt.datetime
    content: bytes = field(repr=False)
    author: Author
    legal_authenticator: Author | None = None
    authenticated_at: dt.datetime | None = None
    stay: Stay | None = None
    unit: Unit | None = None
    mime_type: str = "application/pdf"
    masked_ps: bool = False
    invisible_patient: bool = False
    invisible_legal_rep: bool = False
    replaces: str | None = None
    """uniqueId of the earlier version this one replaces (RPLC), when it was already sent."""
    operated_at: dt.datetime | None = None
    """For an operative report, when the operation took place (the service it reports)."""

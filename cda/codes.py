"""The codes a level-1 document and its XDS entry carry: document kinds, classes, JDV values.

The tables below restate the CI-SIS value sets (JDV) the header uses; a test checks every code,
coding scheme and display name against the SVS files of `cda-spec/jeuxDeValeurs/`. Author
specialties (JDV_J01, ~400 codes) are looked up in their SVS file instead of being restated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cda.errors import InvalidDocumentData
from cda.metadata import Coded
from cda.valuesets import load_value_set

__all__ = [
    "CLASS_COMPTE_RENDU",
    "CONFIDENTIALITY_NORMAL",
    "CONTENT_TYPES",
    "DOCUMENT_KINDS",
    "ENCOUNTER_TYPES",
    "FACILITY_TYPES",
    "FORMAT_PDF",
    "GENDERS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REPRESENTANTS_LEGAUX",
    "LOINC",
    "MASQUE_PS",
    "PRACTICE_SETTINGS",
    "DocumentKind",
    "author_function",
    "author_specialty",
    "content_type",
    "document_kind",
    "encounter_type",
    "facility_type",
    "practice_setting",
]

LOINC = "2.16.840.1.113883.6.1"
TRE_A03_CLASSE = "1.2.250.1.213.1.1.4.1"
TRE_A07_VISIBILITE = "1.2.250.1.213.1.1.4.13"
HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
HL7_GENDER = "2.16.840.1.113883.5.1"
TRE_R02_SECTEUR = "1.2.250.1.71.4.2.4"
TRE_A00_CADRE = "1.2.250.1.213.1.1.4.9"
HL7_ACT_CODE = "2.16.840.1.113883.5.4"
TRE_R213_RENCONTRE = "1.2.250.1.213.1.1.4.2.291"
TRE_G15_PROFESSION = "1.2.250.1.213.1.1.4.5"
TRE_A11_FORMAT = "1.3.6.1.4.1.19376.1.2.3"

# TRE_A03 class 10 for every kind we send: the DMP's own example of an LDL (11490-0) carries it,
# and the other four are "comptes rendus" by name. The official ASS_X04 type→class table was not
# available to check against (domain/cda-level1.md §2).
CLASS_COMPTE_RENDU = Coded("10", TRE_A03_CLASSE, "Compte rendu")

FORMAT_PDF = Coded(
    "urn:ihe:iti:xds-sd:pdf:2008", TRE_A11_FORMAT, "Document à corps non structuré en Pdf/A-1"
)

CONFIDENTIALITY_NORMAL = Coded("N", HL7_CONFIDENTIALITY, "Normal")
MASQUE_PS = Coded("MASQUE_PS", TRE_A07_VISIBILITE, "Masqué aux professionnels de santé")
INVISIBLE_PATIENT = Coded("INVISIBLE_PATIENT", TRE_A07_VISIBILITE, "Non visible par le patient")
INVISIBLE_REPRESENTANTS_LEGAUX = Coded(
    "INVISIBLE_REPRESENTANTS_LEGAUX",
    TRE_A07_VISIBILITE,
    "Non visible par les représentants légaux du patient",
)


@dataclass(frozen=True, slots=True)
class DocumentKind:
    """A kind of document of the DPI contract and the codes it is sent with."""

    kind: str
    type_code: Coded
    class_code: Coded


CLASS_PRESCRIPTION = Coded("42", TRE_A03_CLASSE, "Prescription")

# typeCode (JDV_J07, LOINC) and classCode (TRE_A03, derived from the typeCode by ASS_X04): the
# history kinds, and the live feed's other kinds, which a catch-up after an outage sends too.
# Reports are class 10 (Compte rendu), prescriptions 42; ASS_X04 itself is not published where
# we could read it (../shared/domain/cda-level1.md), so the imaging report follows its label.
DOCUMENT_KINDS: dict[str, DocumentKind] = {
    kind: DocumentKind(kind, Coded(code, LOINC, display), class_code)
    for kind, code, display, class_code in (
        ("LDL", "11490-0", "Lettre de liaison à la sortie d'un établissement de soins",
         CLASS_COMPTE_RENDU),
        ("CRH", "34112-3", "CR hospitalier (séjour)", CLASS_COMPTE_RENDU),
        ("CRO", "34874-8", "CR opératoire", CLASS_COMPTE_RENDU),
        ("CR_CONSULT", "11488-4", "CR ou fiche de consultation ou de visite", CLASS_COMPTE_RENDU),
        ("CR_URG", "15507-7", "CR de passage aux urgences", CLASS_COMPTE_RENDU),
        ("CR_BIO", "11502-2", "CR d'examens biologiques", CLASS_COMPTE_RENDU),
        ("CR_IMG", "18748-4", "CR d'imagerie médicale", CLASS_COMPTE_RENDU),
        ("ORDO", "57833-6", "Prescription de produits de santé", CLASS_PRESCRIPTION),
    )
}  # fmt: skip

GENDERS: dict[str, Coded] = {
    "M": Coded("M", HL7_GENDER, "Masculin"),
    "F": Coded("F", HL7_GENDER, "Féminin"),
}

# JDV_J02, the codes a health establishment sending to the DMP can be.
FACILITY_TYPES: dict[str, Coded] = {
    code: Coded(code, TRE_R02_SECTEUR, display)
    for code, display in (
        ("SA01", "Etablissement public de santé"),
        ("SA02", "Hôpital militaire du Service de santé des armées"),
        ("SA03", "Etablissement privé PSPH"),
        ("SA04", "Etablissement privé non PSPH"),
        ("SA05", "Centre de santé"),
        ("SA30", "Autre établissement sanitaire"),
        ("SA34", "Centre de dialyse"),
        ("SA36", "Centre anti-cancer"),
    )
}

# JDV_J04 (practice setting), without the two codes reserved to the DMP's own services.
PRACTICE_SETTINGS: dict[str, Coded] = {
    code: Coded(code, TRE_A00_CADRE, display)
    for code, display in (
        ("AMBULATOIRE", "Ambulatoire"),
        ("AMO", "Organisme d'assurance maladie obligatoire"),
        ("DEPISTAGE", "Dépistage"),
        ("ESSMS", "Etablissement ou Service Social ou Médico-Social"),
        ("ETABLISSEMENT", "Etablissement de santé"),
        ("HAD", "Hospitalisation à domicile"),
        ("MAD", "Maintien à domicile"),
        ("PALLIATIF", "Soins palliatifs"),
        ("SAD", "Soins à domicile"),
        ("SAMU_SMUR", "SAMU/SMUR"),
    )
}

# JDV_J142 (encounter type).
ENCOUNTER_TYPES: dict[str, Coded] = {
    code: Coded(code, scheme, display)
    for code, scheme, display in (
        ("IMP", HL7_ACT_CODE, "Hospitalisation (établissement, y compris HAD)"),
        ("EMER", HL7_ACT_CODE, "Passage aux urgences (établissement)"),
        ("AMB", HL7_ACT_CODE, "Ambulatoire (hors établissement)"),
        ("FLD", HL7_ACT_CODE, "Terrain (voie publique, hélicoptère, ambulance, etc.)"),
        ("HH", HL7_ACT_CODE, "Soins à domicile (hors établissement)"),
        ("VR", HL7_ACT_CODE, "Virtuelle (exemple : RCP en l'absence du patient)"),
        ("EXTERNE", TRE_R213_RENCONTRE, "Acte et consultation externe (établissement)"),
        ("SEANCE", TRE_R213_RENCONTRE, "Séance (établissement ou libéral)"),
    )
}


def _lookup(table: dict[str, Coded], code: str | None, what: str) -> Coded:
    found = table.get(code or "")
    if found is None:
        known = ", ".join(table)
        raise InvalidDocumentData(f"{what} {code!r} is not one of {known}")
    return found


def document_kind(kind: str) -> DocumentKind:
    """The codes of a DPI document kind; InvalidDocumentData for a kind we do not send."""
    found = DOCUMENT_KINDS.get(kind)
    if found is None:
        raise InvalidDocumentData(
            f"document kind {kind!r} is not sent as a level-1 CDA (sent: {', '.join(DOCUMENT_KINDS)})",
            reason="kind_not_selected",
        )
    return found


def facility_type(code: str) -> Coded:
    return _lookup(FACILITY_TYPES, code, "the facility type (JDV_J02)")


def practice_setting(code: str) -> Coded:
    return _lookup(PRACTICE_SETTINGS, code, "the practice setting (JDV_J04)")


def encounter_type(code: str) -> Coded:
    return _lookup(ENCOUNTER_TYPES, code, "the encounter type (JDV_J142)")


@functools.lru_cache(maxsize=4096)
def _from_value_set(value_set: str, code: str, what: str) -> Coded:
    # A missing or unreadable value set file raises (SpecsNotFound, OSError, ValueError): that is
    # the installation's problem, never a reason to send the document without the code.
    concept = load_value_set(value_set).get(code)
    if concept is None:
        raise InvalidDocumentData(
            f"{what} {code!r} is not in {value_set}: correct the DPI's code or its mapping"
        )
    return Coded(concept.code, concept.scheme, concept.display)


def author_specialty(code: str | None) -> Coded | None:
    """The JDV_J01 specialty of an author; None only when the DPI gives none.

    A code the value set does not hold is refused (InvalidDocumentData), never left out in
    silence: the document would then say less than the DPI does.
    """
    return _from_value_set("JDV_J01", code, "the author's specialty") if code else None


def author_function(code: str | None) -> Coded | None:
    """The JDV_J47 function of the author for the document (CDA functionCode, XDS authorRole)."""
    return _from_value_set("JDV_J47", code, "the author's function") if code else None


# SubmissionSet contentTypeCode (JDV_J59 for the DMP, codes of TRE_R209 TypeActivite, scheme
# 1.2.250.1.213.2.2), display names as the value set spells them. One per kind of stay: ANS's
# mapping gives a full hospitalisation 03 and an outpatient or emergency visit 07; a day case
# (partial hospitalisation) has its own code, 04.
TRE_R209_ACTIVITE = "1.2.250.1.213.2.2"
CONTENT_TYPES: dict[str, Coded] = {
    key: Coded(code, TRE_R209_ACTIVITE, display)
    for key, code, display in (
        ("full", "03", "Hospitalisation complète (non compris hospitalisation de semaine)"),
        ("day", "04", "Hospitalisation de jour"),
        ("external", "07", "Consultations soins externes"),
    )
}


def content_type(encounter_type: str | None, *, partial: bool = False) -> Coded:
    """The contentTypeCode of the documents of one stay, from its JDV_J142 encounter type.

    An inpatient stay (IMP) is a full hospitalisation, or a day case when the DPI says the stay
    was partial; outpatient, external and emergency visits are external consultations. A
    document with no stay counts as an external consultation (the least specific).
    """
    if encounter_type == "IMP":
        return CONTENT_TYPES["day" if partial else "full"]
    return CONTENT_TYPES["external"]

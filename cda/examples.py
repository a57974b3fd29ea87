"""Fixed example inputs: a fictitious establishment, patients with test INS, one document per kind.

They feed the documents kept in `samples/cda/` (a test rebuilds them and compares bytes), the
build benchmark and demos. Every identity here is fictitious and uses the test INS authority
(1.2.250.1.213.1.4.10) or, for one patient, the NIA authority with a made-up number.

    python -m cda.examples samples/cda     # rewrite the sample documents
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sys
from pathlib import Path

from cda.build import build_document
from cda.identifiers import unique_id_for
from cda.ins import InsKind, InsTraits, compute_key
from cda.model import Author, DocumentInput, Establishment, Patient, Stay, Unit

__all__ = [
    "ESTABLISHMENT",
    "example_documents",
    "example_patients",
    "pdf_bytes",
    "write_samples",
]

ESTABLISHMENT = Establishment(
    finess_geo="999999990", name="CH Fictif de Test", oid_root="1.2.250.1.999.42"
)

DOCTOR = Author(
    rpps="10001234567",
    family_name="DUPONT-TEST",
    given_name="Jean",
    specialty_code="G15_10/SM26",
    author_id="A1",
)
SURGEON = Author(
    rpps="10009876543",
    family_name="L'HÔPITAL-TEST",
    given_name="Amélie",
    specialty_code="G15_10/SM15",
    author_id="A2",
)


def pdf_bytes(text: str, size: int = 0, seed: int = 0) -> bytes:
    """A one-page PDF saying `text`, padded with a binary stream up to about `size` bytes."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    content = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    padding = max(0, size - 700)
    if padding:
        # Incompressible filler, like the scanned pages real letters often carry.
        filler = random.Random(seed).randbytes(padding)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(filler), filler))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _matricule(body13: str) -> str:
    return body13 + compute_key(body13)


def example_patients() -> dict[str, Patient]:
    """Three fictitious patients: mainland test INS, Corsican test INS, NIA."""
    return {
        "camille": Patient(
            ipp="IPP000123",
            ins_matricule=_matricule("2850675056123"),
            ins_oid=InsKind.TEST_NIR.value,
            traits=InsTraits(
                birth_family_name="TESTFICTIF",
                birth_given_names="CAMILLE MARIE-HÉLÈNE",
                first_birth_given_name="CAMILLE",
                sex="F",
                birth_date=dt.date(1985, 6, 14),
                birth_place_code="75056",
            ),
            used_family_name="D'ARTAGNAN-TESTFICTIF",
            used_given_name="MARIE",
            identity_status="QUAL",
        ),
        "ange": Patient(
            ipp="IPP000456",
            ins_matricule=_matricule("1720 52A004031".replace(" ", "")),
            ins_oid=InsKind.TEST_NIR.value,
            traits=InsTraits(
                birth_family_name="ÇÉSARI-TEST",
                birth_given_names="ANGE FRANÇOIS",
                first_birth_given_name="ANGE",
                sex="M",
                birth_date=dt.date(1972, 5, 3),
                birth_place_code="2A004",
            ),
            identity_status="QUAL",
        ),
        "nia": Patient(
            ipp="IPP000789",
            ins_matricule=_matricule("1990399123456"),
            ins_oid=InsKind.NIA.value,
            traits=InsTraits(
                birth_family_name="NGUYEN-TEST",
                birth_given_names="THI",
                first_birth_given_name="THI",
                sex="F",
                birth_date=dt.date(1999, 3, 1),
                birth_place_code="99243",
            ),
            identity_status="QUAL",
        ),
    }


def example_documents(pdf_size: int = 0) -> dict[str, tuple[DocumentInput, Patient]]:
    """One document per kind, one replacement and one with visibility flags, by sample name."""
    patients = example_patients()
    cardio = Unit("CARDIO", "Cardiologie", "ETABLISSEMENT")
    stay = Stay("SEJ2024000123", "IMP", dt.datetime(2024, 6, 5, 8, 0), dt.datetime(2024, 6, 12, 11))
    winter = Stay("SEJ2023000077", "EMER", dt.datetime(2023, 12, 24, 23, 40), dt.datetime(2023, 12, 25, 4, 15))  # fmt: skip
    visit = Stay("CS2024000991", "EXTERNE", dt.datetime(2024, 10, 27, 2, 30))

    def document(name: str, kind: str, title: str, when: dt.datetime, **more: object) -> DocumentInput:  # fmt: skip
        fields: dict[str, object] = {
            "document_id": f"DOC-{name.upper()}",
            "set_id": f"SET-{name.upper()}",
            "version": 1,
            "kind": kind,
            "title": title,
            "created_at": when,
            "content": pdf_bytes(f"{title} - patient fictif", pdf_size, seed=len(name)),
            "author": DOCTOR,
            "stay": stay,
            "unit": cardio,
        }
        fields.update(more)
        return DocumentInput(**fields)  # type: ignore[arg-type]

    return {
        "ldl": (
            document(
                "ldl",
                "LDL",
                "Lettre de liaison de sortie",
                dt.datetime(2024, 6, 12, 14, 30),
                # The DPI knows the author signed as the physician responsible for the discharge.
                author=dataclasses.replace(DOCTOR, function_code="DISPHYS"),
            ),
            patients["camille"],
        ),
        "crh": (
            document(
                "crh",
                "CRH",
                "Compte rendu d'hospitalisation",
                dt.datetime(2024, 6, 14, 9, 5),
                authenticated_at=dt.datetime(2024, 6, 15, 10, 0),
            ),
            patients["camille"],
        ),
        "cro": (
            document(
                "cro",
                "CRO",
                "Compte rendu opératoire <pontage> & suites",
                dt.datetime(2024, 6, 6, 16, 45),
                author=SURGEON,
                legal_authenticator=DOCTOR,
                operated_at=dt.datetime(2024, 6, 6, 9, 30),
            ),
            patients["camille"],
        ),
        "cr_consult": (
            document(
                "cr_consult",
                "CR_CONSULT",
                "Consultation de suivi",
                dt.datetime(2024, 10, 27, 2, 30),
                stay=visit,
                unit=Unit("CONSULT", "Consultations externes", "AMBULATOIRE"),
            ),
            patients["nia"],
        ),
        "cr_urg": (
            document(
                "cr_urg",
                "CR_URG",
                "Passage aux urgences",
                dt.datetime(2023, 12, 25, 4, 10),
                stay=winter,
                masked_ps=True,
                invisible_legal_rep=True,
            ),
            patients["ange"],
        ),
        "crh_v2": (
            document(
                "crh_v2",
                "CRH",
                "Compte rendu d'hospitalisation (rectifié)",
                dt.datetime(2024, 6, 20, 9, 0),
                set_id="SET-CRH",
                version=2,
                replaces=unique_id_for(ESTABLISHMENT.finess_geo, "DOC-CRH"),
            ),
            patients["camille"],
        ),
    }


def write_samples(folder: Path) -> list[Path]:
    """Build every example document into `folder/<name>.xml`; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (document, patient) in example_documents().items():
        path = folder / f"{name}.xml"
        path.write_bytes(build_document(document, patient, ESTABLISHMENT).xml)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples/cda")):
        print(path)

"""Building speed: CDA documents/s for 100 KB PDFs, XSD check included, beside the floor.

The floor is what no builder can beat: base64 of the PDF plus SHA-1 of the result, on the same
bytes, measured in the same run. The aim (issue 4) is at least 40 % of the floor.

    python bench/build.py [--documents N] [--pdf-kb K]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import time

from cda.build import build_document
from cda.examples import ESTABLISHMENT, example_documents, pdf_bytes
from cda.validate import cda_schema


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--pdf-kb", type=int, default=100)
    args = parser.parse_args()

    template, patient = example_documents()["crh"]
    pdfs = [pdf_bytes("bench", args.pdf_kb * 1024, seed=i) for i in range(16)]
    inputs = [
        dataclasses.replace(template, document_id=f"BENCH-{i}", content=pdfs[i % len(pdfs)])
        for i in range(args.documents)
    ]
    cda_schema()  # load the XSD before the clock starts, as a long run would
    build_document(inputs[0], patient, ESTABLISHMENT)

    started = time.perf_counter()
    for document in inputs:
        hashlib.sha1(base64.b64encode(document.content)).hexdigest()
    floor = _rate(len(inputs), time.perf_counter() - started)

    started = time.perf_counter()
    for document in inputs:
        build_document(document, patient, ESTABLISHMENT, xsd_check=False)
    unchecked = _rate(len(inputs), time.perf_counter() - started)

    started = time.perf_counter()
    total = 0
    for document in inputs:
        total += build_document(document, patient, ESTABLISHMENT).size
    checked = _rate(len(inputs), time.perf_counter() - started)

    print(
        f"documents: {len(inputs)}, PDF {args.pdf_kb} KB, CDA {total / len(inputs) / 1024:.0f} KB"
    )
    print(f"floor (base64 + SHA-1)          : {floor:10.0f} documents/s")
    print(f"build, no XSD check             : {unchecked:10.0f} documents/s ({unchecked / floor:.0%} of floor)")  # fmt: skip
    print(f"build with XSD check            : {checked:10.0f} documents/s ({checked / floor:.0%} of floor; aim 40%)")  # fmt: skip


if __name__ == "__main__":
    main()

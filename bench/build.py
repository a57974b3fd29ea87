"""Building speed: CDA documents/s for 100 KB PDFs, XSD check included, beside the floor.

The floor is what no builder can beat: base64 of the PDF plus SHA-1 of the result, on the same
bytes, measured in the same run. The aim (issue 4) is at least 40 % of the floor. The three
measures are interleaved over several rounds and the best round of each is kept, so a burst of
load on a shared machine does not favour one of them.

    python bench/build.py [--documents N] [--pdf-kb K] [--rounds R]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import time
from collections.abc import Callable

from cda.build import build_document
from cda.examples import ESTABLISHMENT, example_documents, pdf_bytes
from cda.model import DocumentInput, Patient
from cda.validate import cda_schema


def _rate(run: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    return count / elapsed if elapsed > 0 else float("inf")


def _inputs(count: int, pdf_kb: int) -> tuple[list[DocumentInput], Patient]:
    template, patient = example_documents()["crh"]
    pdfs = [pdf_bytes("bench", pdf_kb * 1024, seed=i) for i in range(16)]
    documents = [
        dataclasses.replace(template, document_id=f"BENCH-{i}", content=pdfs[i % len(pdfs)])
        for i in range(count)
    ]
    return documents, patient


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--documents", type=int, default=500)
    parser.add_argument("--pdf-kb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    documents, patient = _inputs(args.documents, args.pdf_kb)
    cda_schema()  # load the XSD before the clock starts, as a long run would
    sizes = [build_document(d, patient, ESTABLISHMENT).size for d in documents[:16]]

    def floor() -> None:
        for document in documents:
            hashlib.sha1(base64.b64encode(document.content)).hexdigest()

    def unchecked() -> None:
        for document in documents:
            build_document(document, patient, ESTABLISHMENT, xsd_check=False)

    def checked() -> None:
        for document in documents:
            build_document(document, patient, ESTABLISHMENT)

    best = {"floor": 0.0, "unchecked": 0.0, "checked": 0.0}
    for _ in range(args.rounds):
        for name, run in (("floor", floor), ("unchecked", unchecked), ("checked", checked)):
            best[name] = max(best[name], _rate(run, len(documents)))

    base = best["floor"]
    print(
        f"documents: {len(documents)} x {args.rounds} rounds, PDF {args.pdf_kb} KB, "
        f"CDA {sum(sizes) / len(sizes) / 1024:.0f} KB (best round of each)"
    )
    print(f"floor (base64 + SHA-1)   : {base:8.0f} documents/s")
    print(f"build, no XSD check      : {best['unchecked']:8.0f} documents/s ({best['unchecked'] / base:.0%} of floor)")  # fmt: skip
    print(f"build with XSD check     : {best['checked']:8.0f} documents/s ({best['checked'] / base:.0%} of floor; aim 40%)")  # fmt: skip


if __name__ == "__main__":
    main()

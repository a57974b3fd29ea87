"""Cost of signing an ITI-41 request: requests built per second with and without a Signer.

    .venv/bin/python bench/signing.py [requests]

Both figures are measured in the same run on the same documents (one patient's three example
documents); signing adds the VIHF XML-DSig and the submission set's XAdES (RSA-2048, SHA-256).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from connectors.dmp.signing import Signer
from connectors.dmp_mock.pki import make_test_pki
from connectors.dmp_mock.testing import built_examples, request_for


def _rate(documents, n: int, signer: Signer | None) -> float:
    started = time.perf_counter()
    for _ in range(n):
        request_for(documents, signer=signer)
    return n / (time.perf_counter() - started)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    documents = [d for d in built_examples(patient="IPP000123") if not d.entry.replaces]
    with tempfile.TemporaryDirectory() as folder:
        pki = make_test_pki(Path(folder))
        signer = Signer.from_files(pki.signing_cert, pki.signing_key)
        _rate(documents, 5, signer)  # warm up (schemas, caches)
        plain = _rate(documents, n, None)
        signed = _rate(documents, n, signer)
    print(f"{len(documents)} documents per request, {n} requests each")
    print(f"unsigned (baseline): {plain:8.1f} requests/s")
    print(
        f"signed:              {signed:8.1f} requests/s  ({1000 / signed - 1000 / plain:.2f} ms more each)"
    )


if __name__ == "__main__":
    main()

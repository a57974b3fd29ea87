"""A synthetic DPI: realistic, deterministic, fictitious, shipped like httpx ships MockTransport.

    from connectors.dpi.synthetic import GenerationOptions, generate
    report = generate(engine, GenerationOptions(patients=2000, seed=7, as_of=date(2026, 11, 1)))

Every identity uses the test INS authority (or, for a few, the NIA authority with made-up numbers).
A small share of rows is deliberately defective; the side table `synthetic_defect` says which and
what the engine should answer, so tests can check that selection finds every one of them.
"""

from __future__ import annotations

from connectors.dpi.synthetic.errors import GenerationError
from connectors.dpi.synthetic.generator import GenerationOptions, GenerationReport, generate

__all__ = ["GenerationError", "GenerationOptions", "GenerationReport", "generate"]

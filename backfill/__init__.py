"""dmp-backfill: send the documents of patients' earlier stays from the DPI to the DMP.

The engine (configuration, selection, ledger, pipeline, indicator, command line). It imports
`cda` (the clinical-document domain) and `connectors` (the DPI and the DMP); neither imports it.
"""

from __future__ import annotations

__version__ = "0.1.0"

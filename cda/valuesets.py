"""The CI-SIS value sets (JDV, IHE SVS files of `cda-spec/jeuxDeValeurs/`), read at run time.

A value set maps each code to its coding scheme and display name. Files are parsed once per
process; the folder is the one `cda.specs.find_specs()` locates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from cda.specs import find_specs

__all__ = ["Concept", "ValueSet", "load_value_set"]

_SVS = "{urn:ihe:iti:svs:2008}"


@dataclass(frozen=True, slots=True)
class Concept:
    code: str
    scheme: str
    display: str


@dataclass(frozen=True)
class ValueSet:
    """One JDV: its OID, its name, and its concepts by code."""

    oid: str
    name: str
    concepts: dict[str, Concept]

    def __contains__(self, code: object) -> bool:
        return code in self.concepts

    def get(self, code: str) -> Concept | None:
        return self.concepts.get(code)


@functools.cache
def _load(path: Path) -> ValueSet:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(path), parser).getroot()
    vs = root.find(f"{_SVS}ValueSet")
    if vs is None:
        raise ValueError(f"{path} is not an IHE SVS value set")
    concepts = {
        c.get("code"): Concept(c.get("code"), c.get("codeSystem"), c.get("displayName"))
        for c in vs.iter(f"{_SVS}Concept")
    }
    return ValueSet(vs.get("id"), path.stem, concepts)


def load_value_set(prefix: str, shared_dir: str | None = None) -> ValueSet:
    """The value set whose file name starts with `prefix`, e.g. "JDV_J02" or "JDV_J07"."""
    folder = find_specs(shared_dir).value_sets
    matches = sorted(folder.glob(f"{prefix}_*.xml"))
    if len(matches) != 1:
        raise FileNotFoundError(f"no single value set {prefix}_*.xml in {folder}")
    return _load(matches[0])

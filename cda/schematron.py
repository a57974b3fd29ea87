"""The ANS "structuration minimale" schematron, compiled once and run on built documents.

The schematron is XSLT-2 only (DESIGN §6). It is turned into an XSLT stylesheet with the ISO
Schematron XSLT-1 pipeline lxml ships (include → abstract-expand → svrl, with `queryBinding` set
to `xslt` so that pipeline accepts it), then compiled with saxonche, an XSLT-3 processor, from
inside the structurationMinimale folder so the rules' `doc('include/voc-…')` calls find their
value sets. The generated stylesheet is cached on disk (a 0700 folder of ours, its SHA-256
checked before use) under a key made of the schematron files' hash; compiling it with Saxon
(~15 s) happens once per process. saxonche is the optional `validation` extra: without it `available()` is False and callers skip this check.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree, isoschematron

try:
    import saxonche
except ImportError:  # the optional `validation` extra
    saxonche = None

from cda.specs import find_specs
from cda.untrusted_xml import UnsafeXml, parse_untrusted

__all__ = ["CACHE_DIR_ENV", "Finding", "Schematron", "SchematronUnavailable", "available", "load"]

CACHE_DIR_ENV = "BACKFILL_CACHE_DIR"
_PIPELINE_REVISION = "1"  # bump when `_generate_stylesheet` changes what it writes
_SVRL = "{http://purl.oclc.org/dsdl/svrl}"
# Roles that make a document fail; ART-DECOR marks advisory rules "warning" or "info".
_FAILING_ROLES = frozenset({"", "error", "fatal"})


class SchematronUnavailable(RuntimeError):
    """saxonche is not installed, or the schematron cannot be compiled."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One fired rule: its message, where in the document, and whether it fails the document."""

    text: str
    location: str
    test: str
    role: str

    @property
    def fails(self) -> bool:
        return self.role in _FAILING_ROLES

    def plain(self) -> str:
        return f"{self.text} (at {self.location})"


def available() -> bool:
    """True when saxonche can be imported (the `validation` extra)."""
    return saxonche is not None


def cache_dir() -> Path:
    """Where generated stylesheets are kept: BACKFILL_CACHE_DIR, else the user's cache folder."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dmp-backfill"


def _fingerprint(folder: Path) -> str:
    # The lxml version and the pipeline's own revision are part of the key, beside the files.
    digest = hashlib.sha256(f"{etree.__version__}/{_PIPELINE_REVISION}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


def _generate_stylesheet(schematron: Path) -> bytes:
    """The svrl XSLT of the schematron, by lxml's ISO Schematron XSLT-1 pipeline."""
    steps = Path(isoschematron.__file__).parent / "resources" / "xsl" / "iso-schematron-xslt1"
    document = etree.parse(str(schematron))
    # The XSLT-1 skeleton refuses "xslt2"; the stylesheet it writes is run by an XSLT-3 engine.
    document.getroot().set("queryBinding", "xslt")
    included = etree.XSLT(etree.parse(str(steps / "iso_dsdl_include.xsl")))(document)
    expanded = etree.XSLT(etree.parse(str(steps / "iso_abstract_expand.xsl")))(included)
    svrl = etree.XSLT(etree.parse(str(steps / "iso_svrl_for_xslt1.xsl")))(
        expanded, **{"allow-foreign": "'true'", "generate-fired-rule": "'false'"}
    )
    return etree.tostring(svrl, encoding="UTF-8")


def _private_cache() -> Path | None:
    """The cache folder if only we can write to it (created 0700; otherwise None).

    A stylesheet is code Saxon runs: a cache someone else can write to is not used at all.
    """
    folder = cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None  # not ours, or others could have planted a file in it
    if info.st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
    return folder


def _read_checked(path: Path, digest: str) -> bytes | None:
    """The file's bytes if it is a regular file of ours whose SHA-256 is `digest`."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        data = handle.read()
    return data if hashlib.sha256(data).hexdigest() == digest else None


def cached_stylesheet(schematron: Path) -> bytes:
    """The generated stylesheet, from the disk cache when the schematron files are unchanged.

    The cache file is named after the schematron files' fingerprint and the stylesheet's own
    SHA-256, which is checked before the file is used; it lives in a 0700 folder of ours.
    """
    key = _fingerprint(schematron.parent)
    folder = _private_cache()
    if folder is not None:
        for candidate in sorted(folder.glob(f"strucmin-{key}-*.xsl")):
            digest = candidate.name.removesuffix(".xsl").rsplit("-", 1)[-1]
            cached = _read_checked(candidate, digest)
            if cached is not None:
                return cached
    stylesheet = _generate_stylesheet(schematron)
    if folder is not None:
        digest = hashlib.sha256(stylesheet).hexdigest()
        fd, partial = tempfile.mkstemp(dir=folder, prefix=".strucmin-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(stylesheet)
            os.replace(partial, folder / f"strucmin-{key}-{digest}.xsl")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(partial)  # a full disk only costs the generation time next run
    return stylesheet


_XPATH_STEP = re.compile(r"\*\[local-name\(\)='([^']*)' and namespace-uri\(\)='[^']*'\]")
_XPATH_NOISE = re.compile(r"\*:|\[namespace-uri\(\)='[^']*'\]")


def _readable_location(location: str) -> str:
    """`/ClinicalDocument/code[1]` rather than the namespace-proof XPath Saxon writes."""
    return _XPATH_NOISE.sub("", _XPATH_STEP.sub(r"\1", location)) or "/"


class Schematron:
    """A compiled schematron. `check` is thread-safe (one document at a time)."""

    def __init__(self, schematron: Path) -> None:
        if not available():
            raise SchematronUnavailable(
                "the schematron check needs saxonche (pip install 'dmp-backfill[validation]')"
            )
        self._lock = threading.Lock()
        self._processor = saxonche.PySaxonProcessor(license=False)
        compiler = self._processor.new_xslt30_processor()
        # doc('include/voc-…') in the rules resolves against this folder.
        compiler.set_cwd(str(schematron.parent))
        try:
            self._executable = compiler.compile_stylesheet(
                stylesheet_text=cached_stylesheet(schematron).decode("utf-8")
            )
        except saxonche.PySaxonApiError as exc:
            raise SchematronUnavailable(f"the schematron did not compile: {exc}") from None

    def check(self, xml: bytes) -> list[Finding]:
        """Every failed assert and successful report of the document (failing or advisory).

        Saxon gets the document as lxml's hardened parser read it, serialised again: no DOCTYPE
        reaches it, so no entity of the document can make it read a file or a URL.
        """
        try:
            safe = etree.tostring(parse_untrusted(xml), encoding="unicode")
        except (etree.XMLSyntaxError, UnsafeXml) as exc:
            return [Finding(f"the schematron did not run: {exc}", "/", "", "error")]
        with self._lock:
            try:
                node = self._processor.parse_xml(xml_text=safe)
                report = self._executable.transform_to_string(xdm_node=node)
            except saxonche.PySaxonApiError as exc:
                return [Finding(f"the schematron could not run: {exc}", "/", "", "error")]
        if report is None:
            return [Finding("the schematron produced no report", "/", "", "error")]
        root = etree.fromstring(report.encode("utf-8"))
        findings = []
        for fired in root.iter(f"{_SVRL}failed-assert", f"{_SVRL}successful-report"):
            text = " ".join("".join(fired.itertext()).split())
            findings.append(
                Finding(
                    text=text,
                    location=_readable_location(fired.get("location", "")),
                    test=fired.get("test", ""),
                    role=(fired.get("role") or "").lower(),
                )
            )
        return findings


@functools.cache
def _load(schematron: Path) -> Schematron:
    return Schematron(schematron)


def load(shared_dir: str | None = None) -> Schematron:
    """The compiled structuration-minimale schematron (compiled once per process)."""
    return _load(find_specs(shared_dir).schematron)

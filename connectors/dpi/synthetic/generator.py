"""Write a synthetic DPI into a database: the five contract tables plus `synthetic_defect`.

Patient i depends only on (seed, i, as_of): the same arguments give the same rows and the same
PDF bytes whatever the batch size. Rows are written in batches of whole patients, one transaction
per batch, so memory stays flat and an interrupted run leaves whole patients only.

Completion is recorded last, in the generator's own table `synthetic_generation`: a DPI without
that row was interrupted (`generation_state`). `replace=True` never touches the old DPI until the
new one is whole: on SQLite it is built in a temporary file renamed over the old one, on
PostgreSQL in a temporary schema whose tables replace the old ones in one transaction, and its
`file:` documents in a temporary folder swapped with the old one. Every input is checked first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import random
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cda.examples import pdf_bytes
from connectors.dpi.contract import (
    DEFAULT_LIVE_FEED_KINDS,
    create_contract,
    dpi_author,
    dpi_document,
    dpi_patient,
    dpi_stay,
    dpi_unit,
    metadata,
)
from connectors.dpi.synthetic import defects
from connectors.dpi.synthetic.errors import GenerationError
from connectors.dpi.synthetic.hospital import make_authors, make_units
from connectors.dpi.synthetic.people import make_patient
from connectors.dpi.synthetic.records import LIVE_FEED_START, DocumentRow, LiveFeed, make_history

__all__ = [
    "COMPLETE",
    "INTERRUPTED",
    "GenerationOptions",
    "GenerationReport",
    "generate",
    "generation_state",
    "synthetic_defect",
    "synthetic_generation",
]

# Not part of the DPI contract: the generator's own tables.
own_tables = sa.MetaData()

# What the generator damaged on purpose, for tests and audits.
synthetic_defect = sa.Table(
    "synthetic_defect",
    own_tables,
    sa.Column("ipp", sa.String(64), nullable=False),
    sa.Column("document_id", sa.String(64)),
    sa.Column("defect", sa.String(64), nullable=False),
    sa.Column("expected_reason", sa.String(64), nullable=False),
)

# One row, written in the last transaction: its absence means the generation did not finish.
synthetic_generation = sa.Table(
    "synthetic_generation",
    own_tables,
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("patients", sa.Integer, nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("completed_at", sa.DateTime, nullable=False),
)

COMPLETE = "complete"
INTERRUPTED = "incomplete (interrupted)"

# Just over the shipped rules' max_content_bytes (20 MB): a sparse file, so it costs no disk.
OVERSIZE_BYTES = 20_000_001


@dataclass(frozen=True)
class GenerationOptions:
    patients: int
    seed: int
    as_of: dt.date
    pdf_kb: int = 8
    finess_geo: str = "999999990"
    files_dir: Path | None = None
    """Where `file:` documents go; None: every content is inline and file defects are skipped."""
    batch_patients: int = 500
    replace: bool = False
    """Drop existing DPI tables first (never a real DPI: only tables this generator created)."""
    live_feed_since: dt.date | None = None
    """When the establishment's live DMP feed started (default: records.LIVE_FEED_START)."""
    live_feed_kinds: tuple[str, ...] = DEFAULT_LIVE_FEED_KINDS
    """The kinds the live feed sends (`[live_feed] kinds`), at records.LIVE_FEED_SHARES."""

    def live_feed(self) -> LiveFeed:
        since = (
            dt.datetime.combine(self.live_feed_since, dt.time())
            if self.live_feed_since is not None
            else LIVE_FEED_START
        )
        return LiveFeed(since=since, kinds=frozenset(self.live_feed_kinds))


@dataclass
class GenerationReport:
    patients: int = 0
    stays: int = 0
    documents: int = 0
    content_bytes: int = 0
    seconds: float = 0.0
    defects: Counter[str] = field(default_factory=Counter)


def _pdf_for(rng: random.Random, document: DocumentRow, pdf_kb: int) -> bytes:
    text = f"{document.title} - {document.document_id} - CH Fictif de Test (document fictif)"
    return pdf_bytes(text, size=pdf_kb * 1024, seed=rng.getrandbits(64))


def _write_file(
    folder: Path, document: DocumentRow, defect: str | None, write_dir: Path | None = None
) -> str:
    """Write the document's file (into `write_dir` when building aside) and return its final URI."""
    path = folder / f"{document.document_id}.pdf"
    if defect == "file_missing":
        return path.as_uri()  # never written
    uri = path.as_uri()
    path = (write_dir or folder) / path.name
    # Patients' documents, even fictitious ones, are created private (0600, as a share should be).
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        if defect == "file_oversize":
            handle.write(b"%PDF-1.4\n")
            handle.seek(OVERSIZE_BYTES - 6)
            handle.write(b"%%EOF\n")
        elif defect == "file_not_pdf":
            handle.write(b"PK\x03\x04 not a pdf " + (document.content or b"")[20:])
        elif defect != "file_empty":
            handle.write(document.content or b"")
    return uri


def _patient_rows(
    options: GenerationOptions,
    index: int,
    authors: list[str],
    as_of: dt.datetime,
    write_dir: Path | None = None,
) -> tuple[dict, list[dict], list[dict], list[defects.DefectRecord]]:
    rng = random.Random(f"{options.seed}/{index}")
    ipp = f"P{index:08d}"
    patient = make_patient(rng, ipp, options.as_of, index)
    found: list[defects.DefectRecord] = []
    patient_defect = defects.patient_defect_for(index)
    if patient_defect:
        shared = None
        if patient_defect == "ins_shared":  # the previous patient's INS, as it was written
            before = index - 1
            previous = make_patient(
                random.Random(f"{options.seed}/{before}"), f"P{before:08d}", options.as_of, before
            )
            shared = defects.make_eligible(previous, before).ins_matricule
        patient = defects.apply_patient_defect(patient, patient_defect, index, shared)
        found.append(
            defects.DefectRecord(ipp, None, patient_defect, defects.PATIENT_DEFECTS[patient_defect])
        )
    with_files = options.files_dir is not None
    planned = defects.document_defect_for(index, with_files)
    if planned:
        patient = defects.make_eligible(patient, index)
    stays, documents = make_history(
        rng,
        ipp,
        as_of=as_of,
        authors=authors,
        finess_geo=options.finess_geo,
        born=patient.birth_date,
        sex=patient.sex,
        died=patient.death_date,
        deceased=patient.deceased,
        ensure_recent=bool(patient_defect or planned),
        live_feed=options.live_feed(),
    )
    target = defects.defect_target(documents, as_of) if planned else None
    expected = {**defects.DOCUMENT_DEFECTS, **defects.FILE_DEFECTS}
    added: list[DocumentRow] = []
    for document in documents:
        document.content = _pdf_for(rng, document, options.pdf_kb)
        defect = planned if document is target else defects.random_document_defect(rng, with_files)
        in_file = defect in defects.FILE_DEFECTS or (with_files and rng.random() < 0.005)
        if defect and defect not in defects.FILE_DEFECTS:
            added += defects.apply_document_defect(document, defect, stays)
        if in_file:
            document.content_uri = _write_file(
                options.files_dir,  # type: ignore[arg-type]
                document,
                defect,
                write_dir,
            )
            document.content = None
        if defect:
            found.append(defects.DefectRecord(ipp, document.document_id, defect, expected[defect]))
    for extra in added:
        extra.content = _pdf_for(rng, extra, options.pdf_kb)
    documents += added
    return (
        dataclasses.asdict(patient),
        [dataclasses.asdict(s) for s in stays],
        [dataclasses.asdict(d) for d in documents],
        found,
    )


def _check_target(engine: Engine, options: GenerationOptions) -> bool:
    """Refuse a database that holds a DPI we may not drop; True when there is one to replace."""
    tables = [*metadata.sorted_tables, *own_tables.sorted_tables]
    existing = set(sa.inspect(engine).get_table_names())
    clash = sorted(existing & {t.name for t in tables})
    if clash and options.replace and synthetic_defect.name not in existing:
        raise GenerationError(
            f"the database holds {', '.join(clash)} but no {synthetic_defect.name} table: these were not "
            "made by the generator, and --replace never drops a DPI it did not create"
        )
    if clash and not options.replace:
        raise GenerationError(
            f"the database already holds {', '.join(clash)}: generate into an empty database, "
            "or pass --replace to drop the synthetic tables first"
        )
    return bool(clash)


def _check_folder(folder: Path) -> None:
    """The content folder can be created and written, before anything else is touched."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        probe.touch(mode=0o600)
        probe.unlink()
    except OSError as exc:
        raise GenerationError(
            f"cannot write in the content folder {folder}: {exc.strerror or exc}"
        ) from exc


def _create_tables(engine: Engine) -> None:
    tables = [*metadata.sorted_tables, *own_tables.sorted_tables]
    with engine.begin() as conn:
        for table in reversed(tables):
            table.drop(conn, checkfirst=True)
        create_contract(conn)
        own_tables.create_all(conn, checkfirst=False)


def generate(
    engine: Engine,
    options: GenerationOptions,
    progress: Callable[[int], None] | None = None,
) -> GenerationReport:
    """Create the DPI tables in `engine`'s database and fill them; returns what was written.

    With `options.replace`, an existing synthetic DPI stays as it was if this fails or is
    interrupted (see the module's docstring); otherwise an interrupted run leaves whole patients
    and no completion row.
    """
    if options.patients < 0:
        raise GenerationError("the number of patients cannot be negative")
    if options.files_dir is not None:
        # `file:` URIs are absolute: a DPI made from a relative folder must stay readable.
        options = dataclasses.replace(options, files_dir=options.files_dir.resolve())
        _check_folder(options.files_dir)
    if _check_target(engine, options):
        return _replace(engine, options, progress)
    _create_tables(engine)
    return _fill(engine, options, progress, options.files_dir)


def _replace(
    engine: Engine, options: GenerationOptions, progress: Callable[[int], None] | None
) -> GenerationReport:
    """Build the new DPI aside, then put it in the old one's place in one step."""
    tag = uuid.uuid4().hex[:12]
    staging = None
    if options.files_dir is not None:
        staging = options.files_dir.with_name(f".{options.files_dir.name}.new-{tag}")
        staging.mkdir(mode=0o700)
    try:
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            report = _replace_sqlite_file(engine, Path(database), tag, options, progress, staging)
        elif engine.dialect.name == "postgresql":
            report = _replace_postgresql_schema(engine, tag, options, progress, staging)
        else:  # no cheap way to build aside: every input was checked, drop and generate
            _create_tables(engine)
            report = _fill(engine, options, progress, staging)
            _swap_folders(options, staging)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _replace_sqlite_file(
    engine: Engine,
    path: Path,
    tag: str,
    options: GenerationOptions,
    progress: Callable[[int], None] | None,
    staging: Path | None,
) -> GenerationReport:
    temporary = path.with_name(f".{path.name}.new-{tag}")
    aside = sa.create_engine(engine.url.set(database=str(temporary)))
    sqlite_speedups(aside)
    try:
        _create_tables(aside)
        report = _fill(aside, options, progress, staging)
        aside.dispose()
        engine.dispose()  # the caller's connections point at the old file
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        os.replace(temporary, path)
        _swap_folders(options, staging)
    except BaseException:
        aside.dispose()
        for leftover in (
            temporary,
            *(temporary.with_name(temporary.name + s) for s in ("-wal", "-shm")),
        ):
            leftover.unlink(missing_ok=True)
        raise
    return report


def _replace_postgresql_schema(
    engine: Engine,
    tag: str,
    options: GenerationOptions,
    progress: Callable[[int], None] | None,
    staging: Path | None,
) -> GenerationReport:
    schema = f"synthetic_new_{tag}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    aside = engine.execution_options(schema_translate_map={None: schema})
    try:
        with aside.begin() as conn:
            create_contract(conn)
            own_tables.create_all(conn, checkfirst=False)
        report = _fill(aside, options, progress, staging)
        # DDL is transactional in PostgreSQL: the old tables go and the new ones arrive together.
        with engine.begin() as conn:
            target = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            for table in reversed([*metadata.sorted_tables, *own_tables.sorted_tables]):
                table.drop(conn, checkfirst=True)
            for table in [*metadata.sorted_tables, *own_tables.sorted_tables]:
                conn.execute(
                    sa.text(f'ALTER TABLE "{schema}"."{table.name}" SET SCHEMA "{target}"')
                )
        _swap_folders(options, staging)
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError), engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return report


def _swap_folders(options: GenerationOptions, staging: Path | None) -> None:
    """The new content folder takes the old one's name; the old one is deleted."""
    if staging is None or options.files_dir is None:
        return
    old = options.files_dir.with_name(f".{options.files_dir.name}.old-{staging.name[-12:]}")
    if options.files_dir.exists():
        os.replace(options.files_dir, old)
    os.replace(staging, options.files_dir)
    shutil.rmtree(old, ignore_errors=True)


def _fill(
    engine: Engine,
    options: GenerationOptions,
    progress: Callable[[int], None] | None,
    write_dir: Path | None,
) -> GenerationReport:
    """Insert every row, batch by batch, and the completion row last."""
    started = time.perf_counter()
    report = GenerationReport()
    as_of = dt.datetime.combine(options.as_of, dt.time(0, 0))
    authors = make_authors(options.seed)
    author_ids = [a.author_id for a in authors[1:]]  # the ADELI-only author signs defects only
    with engine.begin() as conn:
        conn.execute(dpi_unit.insert(), [dataclasses.asdict(u) for u in make_units()])
        conn.execute(dpi_author.insert(), [dataclasses.asdict(a) for a in authors])

    for first in range(0, options.patients, options.batch_patients):
        patients, stays, documents, found = [], [], [], []
        for index in range(first, min(options.patients, first + options.batch_patients)):
            p, s, d, f = _patient_rows(options, index, author_ids, as_of, write_dir)
            patients.append(p)
            stays.extend(s)
            documents.extend(d)
            found.extend(f)
        with engine.begin() as conn:
            conn.execute(dpi_patient.insert(), patients)
            if stays:
                conn.execute(dpi_stay.insert(), stays)
            if documents:
                conn.execute(dpi_document.insert(), documents)
            if found:
                conn.execute(synthetic_defect.insert(), [dataclasses.asdict(r) for r in found])
        report.patients += len(patients)
        report.stays += len(stays)
        report.documents += len(documents)
        report.content_bytes += sum(len(d["content"] or b"") for d in documents)
        report.defects.update(r.defect for r in found)
        if progress is not None:
            progress(report.patients)
    with engine.begin() as conn:
        conn.execute(
            synthetic_generation.insert(),
            {
                "seed": options.seed,
                "patients": options.patients,
                "as_of": options.as_of,
                "completed_at": dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
            },
        )
    report.seconds = time.perf_counter() - started
    return report


def generation_state(conn: sa.Connection) -> str | None:
    """COMPLETE or INTERRUPTED for a DPI this generator made; None for any other DPI."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(synthetic_generation.name):
        return None
    done = conn.execute(sa.select(sa.func.count()).select_from(synthetic_generation)).scalar_one()
    return COMPLETE if done else INTERRUPTED


def sqlite_speedups(engine: Engine) -> None:
    """Generation only: a synthetic DPI can be regenerated, so durability is not worth the cost."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

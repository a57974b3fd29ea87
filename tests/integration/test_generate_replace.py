"""`generate` never leaves a DPI that looks whole but is not (SQLite and PostgreSQL).

--replace builds the new DPI aside: a failure, an interruption or a bad input at any point leaves
the old DPI and its files exactly as they were. Without --replace, an interrupted generation is
reported as such (`generation_state`), not as a whole DPI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.dpi.summary import summarize
from connectors.dpi.synthetic import GenerationError, GenerationOptions, generate
from connectors.dpi.synthetic.generator import COMPLETE, INTERRUPTED, generation_state
from tests.integration.test_synthetic_dpi import dump

AS_OF = dt.date(2026, 11, 1)


class Stop(Exception):
    pass


def _stop_after_first_batch(_patients: int) -> None:
    raise Stop


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.fixture
def engine(database):
    engine = database.engine()
    yield engine
    engine.dispose()


@pytest.fixture
def options(tmp_path: Path) -> GenerationOptions:
    return GenerationOptions(
        patients=40, seed=3, as_of=AS_OF, batch_patients=10, files_dir=tmp_path / "files"
    )


def _leftovers(engine: sa.Engine, folder: Path) -> list[str]:
    """Anything a build aside could leave behind: hidden files/folders, staging schemas."""
    found = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            found += conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'synthetic_new_%'")
            ).scalars().all()  # fmt: skip
    return found


@pytest.mark.parametrize(
    "failure", [Stop, KeyboardInterrupt], ids=["error-midway", "interrupt-midway"]
)
def test_a_replace_that_fails_midway_leaves_the_old_dpi_as_it_was(
    engine: sa.Engine, options: GenerationOptions, tmp_path: Path, failure: type[BaseException]
) -> None:
    generate(engine, options)
    before, files_before = dump(engine), _files(options.files_dir)  # type: ignore[arg-type]

    def fail(_patients: int) -> None:
        raise failure

    other = dataclasses.replace(options, seed=99, replace=True)
    with pytest.raises(failure):
        generate(engine, other, progress=fail)
    assert dump(engine) == before
    assert _files(options.files_dir) == files_before  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert generation_state(conn) == COMPLETE
    assert _leftovers(engine, tmp_path) == []


def test_a_replace_with_an_unwritable_files_dir_touches_nothing(
    engine: sa.Engine, options: GenerationOptions, tmp_path: Path
) -> None:
    generate(engine, options)
    before = dump(engine)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(GenerationError, match="cannot write in the content folder"):
        generate(engine, dataclasses.replace(options, replace=True, files_dir=blocker / "sub"))
    assert dump(engine) == before


def test_a_replace_that_succeeds_swaps_the_whole_dpi_and_leaves_nothing_behind(
    engine: sa.Engine, options: GenerationOptions, tmp_path: Path
) -> None:
    generate(engine, options)
    before, files_before = dump(engine), _files(options.files_dir)  # type: ignore[arg-type]
    generate(engine, dataclasses.replace(options, seed=99, replace=True))
    assert dump(engine) != before
    assert _files(options.files_dir) != files_before  # type: ignore[arg-type]
    summary = summarize(engine)
    assert summary.patients == 40
    assert summary.generation == COMPLETE
    assert _leftovers(engine, tmp_path) == []
    # Same arguments as the first run: the same DPI again, byte for byte.
    generate(engine, dataclasses.replace(options, replace=True))
    assert dump(engine) == before


def test_an_interrupted_generation_is_reported_incomplete(
    engine: sa.Engine, options: GenerationOptions
) -> None:
    with pytest.raises(Stop):
        generate(engine, options, progress=_stop_after_first_batch)
    summary = summarize(engine)
    assert summary.patients == 10, "whole batches only"
    assert summary.generation == INTERRUPTED
    generate(engine, dataclasses.replace(options, replace=True))
    assert summarize(engine).generation == COMPLETE

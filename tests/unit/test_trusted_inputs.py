"""Trust what you load (issue 17): schemas only from the configured folder, and a stylesheet cache
that nobody else can plant code in."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from cda import schematron as sch
from cda.specs import SHARED_DIR_ENV, SpecsNotFound, find_specs


def test_a_shared_folder_where_the_command_runs_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "shared"
    (planted / "cda-spec").mkdir(parents=True)
    (planted / "xds-spec").mkdir()
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")
    monkeypatch.delenv(SHARED_DIR_ENV, raising=False)
    with pytest.raises(SpecsNotFound, match=SHARED_DIR_ENV):
        find_specs()
    assert find_specs(planted).root == planted.resolve()


@pytest.fixture
def schematron_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "strucmin"
    folder.mkdir()
    (folder / "rules.sch").write_text("<schema/>")
    monkeypatch.setenv(sch.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(sch, "_generate_stylesheet", lambda _path: b"<generated/>")
    return folder / "rules.sch"


def test_the_cache_folder_is_private_and_the_file_named_by_its_hash(schematron_file) -> None:
    assert sch.cached_stylesheet(schematron_file) == b"<generated/>"
    folder = sch.cache_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [cached] = folder.iterdir()
    assert cached.name.endswith(f"-{hashlib.sha256(b'<generated/>').hexdigest()}.xsl")
    assert sch.cached_stylesheet(schematron_file) == b"<generated/>"


def test_a_tampered_cache_file_is_not_used(schematron_file, monkeypatch) -> None:
    sch.cached_stylesheet(schematron_file)
    [cached] = sch.cache_dir().iterdir()
    cached.write_bytes(b"<xsl:stylesheet>run something</xsl:stylesheet>")
    assert sch.cached_stylesheet(schematron_file) == b"<generated/>"


def test_a_planted_file_with_a_made_up_name_is_not_used(schematron_file) -> None:
    sch.cached_stylesheet(schematron_file)
    [cached] = sch.cache_dir().iterdir()
    key = cached.name.split("-")[1]
    evil = b"<evil/>"
    for old in sch.cache_dir().iterdir():
        old.unlink()
    planted = sch.cache_dir() / f"strucmin-{key}-{hashlib.sha256(evil).hexdigest()}.xsl"
    os.symlink(Path(os.devnull), planted)
    assert sch.cached_stylesheet(schematron_file) == b"<generated/>"


def test_a_cache_folder_others_can_write_to_is_not_used(schematron_file) -> None:
    folder = sch.cache_dir()
    folder.mkdir(mode=0o700)
    folder.chmod(0o777)
    key_source = schematron_file  # generate once with the folder shared: nothing is trusted
    assert sch.cached_stylesheet(key_source) == b"<generated/>"
    assert list(folder.iterdir()) == []

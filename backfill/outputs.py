"""Files people open, and text people read: the one way the engine writes them.

Every output file (the audit's JSON and CSVs, exported CDAs, the demo's files, the metrics
textfile, the indicator's JSON, the HTML report) goes through `open_output` / `write_output`:

- atomic: written to a hidden temporary file in the same folder, flushed to disk, then renamed
  onto its name at the end; an interrupted command leaves the old file (or none), never a
  partial file that looks whole;
- private: files are created 0600 and the folders we create 0700, since most outputs carry
  personal data (docs/security.md says which);
- optionally never overwriting (`overwrite=False`, the `open(..., "xb")` contract): the file is
  linked onto its name only if nothing is there, atomically, so two exports never share a file.

CSV cells go through `safe_cell` (a spreadsheet must not run a cell as a formula), file names
made from data through `export_name`, and data printed on the console through `plain` (no markup,
no control characters).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from rich.text import Text

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "SafeCsvWriter",
    "console_safe",
    "export_name",
    "open_output",
    "plain",
    "private_folder",
    "safe_cell",
    "write_output",
]

FILE_MODE = 0o600
FOLDER_MODE = 0o700

# A spreadsheet reads a cell starting with one of these as a formula (or strips it and then does).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# C0 controls but tab and newline, DEL, and C1 controls: escape sequences start with ESC or CSI.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_MAX = 80


def private_folder(path: Path) -> Path:
    """Create `path` and its missing parents 0700 (folders already there are left as they are)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: theirs, left alone
        os.chmod(folder, FOLDER_MODE)  # the umask may have taken bits away; never adds any
    if not path.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(path))
    return path


@contextlib.contextmanager
def open_output(path: Path, mode: str = "w", *, overwrite: bool = True) -> Iterator[IO[Any]]:
    """A file to write `path` through: it appears, whole and 0600, only when the block ends well.

    Text mode is UTF-8 with `newline=""` (what `csv` wants). With `overwrite=False` an existing
    `path` raises `FileExistsError` (before or after writing; nothing of it is changed).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output writes with 'w' or 'wb', not {mode!r}")
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(17, "File exists", str(path))
    private_folder(path.parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".part", dir=path.parent)
    try:
        handle: IO[Any] = (
            os.fdopen(fd, "wb")
            if mode == "wb"
            else os.fdopen(fd, "w", encoding="utf-8", newline="")
        )
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_new(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def write_output(path: Path, data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write `data` whole to `path` (see `open_output`); returns `path`."""
    if isinstance(data, str):
        with open_output(path, "w", overwrite=overwrite) as text:
            text.write(data)
    else:
        with open_output(path, "wb", overwrite=overwrite) as binary:
            binary.write(data)
    return path


def _link_new(temporary: str, path: Path) -> None:
    """Give `temporary` the name `path` only if that name is free, then drop the temporary name."""
    try:
        os.link(temporary, path)  # atomic, and fails with FileExistsError if the name is taken
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: reserve the name exclusively, then move onto it.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        os.replace(temporary, path)
        return
    os.unlink(temporary)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (a crash right after must not bring the old name back)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not sync folders; the rename itself is still atomic
    finally:
        os.close(fd)


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting like a formula gets a `'` first.

    Numbers pass unchanged (they are not formulas); None becomes an empty cell.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class SafeCsvWriter:
    """A CSV writer (lines end in `\n`) whose every cell goes through `safe_cell`.

    A cell holding a bare CR is quoted too: with `\n` line ends, Python before 3.12 writes it
    unquoted and a spreadsheet then starts a new row inside the cell.
    """

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._line = io.StringIO()
        self._writer = csv.writer(self._line, lineterminator="\r\n")  # quotes CR and LF

    def writerow(self, row: Iterable[object]) -> None:
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow([safe_cell(cell) for cell in row])
        self._handle.write(self._line.getvalue()[:-2] + "\n")


def export_name(identifier: str, suffix: str = ".xml") -> str:
    """A file name for a document id: readable, safe, and unique per id.

    Characters outside `A-Za-z0-9._-` become `_`, leading dots go (no hidden files, no `..`),
    and a short hash of the exact id follows, so `a/b` and `a_b` never share a file.
    """
    readable = _NAME_UNSAFE.sub("_", identifier).lstrip(".")[:_NAME_MAX] or "document"
    digest = hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}-{digest}{suffix}"


def console_safe(value: object) -> str:
    """`value` as a string without control characters (an escape sequence is not printed)."""
    return _CONTROL.sub("", str(value))


def plain(value: object) -> Text:
    """Data for the console: shown as the text it is (no rich markup), control characters gone."""
    return Text(console_safe(value))

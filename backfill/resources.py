"""The data shipped with the engine: the rule files of `selectors/` and the SQL of `sql/`.

In the repository they are top-level folders (data only, see DESIGN §2); a wheel carries them
under `backfill/_data/`. Both are read through importlib.resources, so an installed engine and a
source checkout find the same files.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["data_folder", "read_sql", "rule_file_names"]


def data_folder(name: str) -> Traversable:
    """`selectors` or `sql`, wherever this installation keeps it."""
    packaged = files("backfill") / "_data" / name
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"the engine's {name}/ folder is missing from this installation")


def read_sql(name: str) -> str:
    """The text of one file of `sql/`."""
    return (data_folder("sql") / name).read_text(encoding="utf-8")


def rule_file_names() -> list[str]:
    """Names of the shipped rule files (`history-5y.toml`, …)."""
    return sorted(p.name for p in data_folder("selectors").iterdir() if p.name.endswith(".toml"))

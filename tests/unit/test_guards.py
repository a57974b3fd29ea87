"""Layout guards: `selectors/` is data only, and `import selectors` stays the standard library's."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_selectors_folder_holds_rule_files_only() -> None:
    """A .py file or __init__.py in selectors/ would shadow the stdlib module asyncio needs."""
    offenders = [p.name for p in (ROOT / "selectors").iterdir() if p.suffix != ".toml"]
    assert offenders == []


def test_import_selectors_is_the_standard_library_even_from_the_repo_root() -> None:
    """Run from the checkout (cwd first on sys.path), asyncio and subprocess still import."""
    code = "import selectors, asyncio, subprocess, sysconfig;print(selectors.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.startswith(sysconfig.get_paths()["stdlib"])


def test_dependency_direction() -> None:
    """cda imports nothing of ours; connectors may import cda but never backfill (DESIGN §2)."""
    allowed = {"cda": {"cda"}, "connectors": {"cda", "connectors"}}
    bad: list[str] = []
    for package, permitted in allowed.items():
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in {"backfill", "cda", "connectors"} and top not in permitted:
                        bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []

"""A fresh clone installs the versions the tests ran with (issue 17): constraints.txt pins every
dependency pyproject.toml names, within its floors, and the Makefile installs through it."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_dependency_is_pinned_within_its_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = _pins()
    for text in wanted:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run `make constraints`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is below pyproject's {requirement.specifier}"
        )


def test_known_fixed_versions_are_the_floor() -> None:
    pins = _pins()
    assert tuple(int(p) for p in pins["starlette"].split(".")[:3]) >= (0, 49, 1)
    assert tuple(int(p) for p in pins["h11"].split(".")[:2]) >= (0, 16)


def test_make_installs_through_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := -c constraints.txt" in makefile
    assert makefile.count("install $(CONSTRAINTS) -e") == 2

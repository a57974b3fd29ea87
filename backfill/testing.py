"""Helpers for tests and benches that watch a run from outside: the processes it leaves below
it and their memory, read from Linux's /proc (the machines the crash tests and figures are for)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["descendants", "status_mib"]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, and theirs: the fork server and its build workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except OSError:
                continue  # gone meanwhile
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def status_mib(field: str, pid: int | str = "self") -> float:
    """A memory line of /proc/PID/status (`VmRSS`, `VmHWM`…) in MiB; OSError if the process is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"/proc/{pid}/status has no {field}")

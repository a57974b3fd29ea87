"""`backfill mock-dmp` as a user starts it: it serves ITI-41 and its control plane, and says so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.acceptance.cli import run_backfill
from tests.integration.mock_dmp_support import by_patient, post


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mock_dmp_serves_until_stopped(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKFILL_") or k in ("BACKFILL_SHARED_DIR", "BACKFILL_CACHE_DIR")
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill", "mock-dmp", "--port", str(port), "--db", "sqlite:///store.sqlite"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        seen = []
        for line in process.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "mock DMP on" in line:  # printed once the port is bound and listening
                break
        else:
            raise AssertionError(f"the mock did not start: {''.join(seen)}")
        assert f"http://127.0.0.1:{port}/si-dmp-server/v2/services/repository" in "".join(seen)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            answer = post(
                client, "/si-dmp-server/v2/services/repository", by_patient()["IPP000456"]
            )
            assert answer.outcome.success
            assert len(client.get("/_mock/documents").json()) == 1
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "store.sqlite").exists(), "the store is the file the user named"


def test_mock_dmp_refuses_half_a_tls_setup(tmp_path: Path) -> None:
    result = run_backfill("mock-dmp", "--tls-cert", "server.crt", cwd=tmp_path)
    assert result.returncode == 2
    assert "--tls-cert and --tls-key go together" in result.stderr
    (tmp_path / "a.crt").write_text("x")
    missing = run_backfill(
        "mock-dmp", "--tls-cert", "a.crt", "--tls-key", "absent.key", cwd=tmp_path
    )
    assert missing.returncode == 2
    assert "absent.key: file not found" in missing.stderr


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_backfill("mock-dmp", "--port", str(port), "--db", "sqlite://", cwd=tmp_path)
    assert result.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_store_url_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")  # no one, not even root, can create under it
    result = run_backfill(
        "mock-dmp", "--port", "0", "--db", f"sqlite:///{tmp_path / 'a-file' / 'x.sqlite'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "the store cannot be opened" in result.stderr


def test_seeding_from_the_dpi_before_serving(tmp_path: Path) -> None:
    """`--seed-from-dpi`: the live feed's documents of the configured DPI are in the mock."""
    dpi = f"sqlite:///{tmp_path / 'dpi.sqlite'}"
    generated = run_backfill(
        "dpi", "generate", "--url", dpi, "--patients", "20", "--pdf-kb", "1", cwd=tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    env |= {
        "BACKFILL_DPI_URL": dpi,
        "BACKFILL_SHARED_DIR": os.environ.get("BACKFILL_SHARED_DIR", ""),
    }
    env = {k: v for k, v in env.items() if v}
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill", "mock-dmp", "--port", str(port), "--db",
         "sqlite:///store.sqlite", "--seed-from-dpi"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        seen = []
        for line in process.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "mock DMP on" in line:
                break
        else:
            raise AssertionError(f"the mock did not start: {''.join(seen)}")
        held = httpx.get(f"http://127.0.0.1:{port}/_mock/documents", timeout=30).json()
        assert held
        assert f"{len(held)} live-sent documents seeded" in "".join(seen)
        assert {d["status"] for d in held} == {"Approved"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_mock_whose_starter_is_killed_stops_by_itself(tmp_path: Path) -> None:
    """The demo (or a test) killed with -9 cannot stop its mock DMP: the mock notices that its
    parent is gone and stops, rather than keep its port and its store for ever."""
    import signal
    import time

    from tests.acceptance.cli import clean_env

    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pathlib import Path\n"
         "from connectors.dmp_mock.process import MockProcess\n"
         "m = MockProcess('sqlite:///store.sqlite', Path('mock.log'))\n"
         "m.start()\n"
         "print(m.pid, flush=True)\n"
         "time.sleep(600)\n"],
        cwd=tmp_path, env=clean_env({"PYTHONPATH": str(Path(__file__).resolve().parents[2])}),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert starter.stdout is not None
    mock_pid = int(starter.stdout.readline())
    starter.send_signal(signal.SIGKILL)
    starter.wait(timeout=30)
    deadline = time.monotonic() + 60
    while _alive(mock_pid):
        assert time.monotonic() < deadline, "the orphaned mock DMP kept running"
        time.sleep(0.1)
    assert "mock_dmp.orphaned" in (tmp_path / "mock.log").read_text(encoding="utf-8")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False

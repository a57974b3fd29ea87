"""`backfill mock-dmp`: serve the mock DMP (ITI-41, ITI-18, control plane) in the foreground."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import ssl
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
import uvicorn

from backfill.cli._app import app, state
from backfill.databases import describe_url, open_engine, require_driver
from backfill.errors import ConfigError
from backfill.key_files import warn_if_exposed
from backfill.logs import get_logger
from backfill.outputs import write_output
from connectors.dmp.client import REPOSITORY_PATH, SERVICES_PATH
from connectors.dmp_mock.app import MockConfig
from connectors.dmp_mock.process import BANNER
from connectors.dmp_mock.queries import SeedConflict, SeedEntry, seed
from connectors.dmp_mock.registry import Registry
from connectors.dmp_mock.seeding import live_feed_documents
from connectors.dmp_mock.server import TlsFiles, uvicorn_config

__all__ = ["mock_dmp"]

log = get_logger("backfill.mock_dmp")


class UnknownPatients(StrEnum):
    active = "active"
    no_dmp = "no_dmp"


@app.command("mock-dmp")
def mock_dmp(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")
    ] = 8700,
    db: Annotated[
        str, typer.Option("--db", help="SQLAlchemy URL of the mock's store.")
    ] = "sqlite:///mock-dmp.sqlite",
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", min=0.1, help="Requests/s per client before HTTP 429 (default: no limit)."
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Server certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="Server private key (PEM).")
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option("--client-ca", help="CA that client certificates must chain to (mutual TLS)."),
    ] = None,
    unknown_patients: Annotated[
        UnknownPatients,
        typer.Option("--unknown-patients", help="DMP state of a patient never declared."),
    ] = UnknownPatients.active,
    control: Annotated[
        bool | None,
        typer.Option(
            "--control/--no-control",
            help="Serve /_mock/* to loopback peers (default: on when --host is a loopback address).",
        ),
    ] = None,
    trust_ca: Annotated[
        Path | None,
        typer.Option(
            "--trust-ca",
            help="CA that the VIHF and submission-set signatures must chain to (then required).",
        ),
    ] = None,
    max_body_mb: Annotated[
        int, typer.Option("--max-body-mb", min=1, help="Largest request accepted.")
    ] = 64,
    port_file: Annotated[
        Path | None,
        typer.Option(
            "--port-file", help="Write the port bound (useful with --port 0) to this file."
        ),
    ] = None,
    exit_with_parent: Annotated[
        bool,
        typer.Option(
            "--exit-with-parent",
            help="Stop when the program that started this one ends, even if it was killed.",
        ),
    ] = False,
    seed_from_dpi: Annotated[
        bool,
        typer.Option(
            "--seed-from-dpi",
            help="First store what the configured DPI (dpi.url) says the live feed sent "
            "(documents with sent_live_at and dmp_unique_id), so replacements can be tried.",
        ),
    ] = False,
) -> None:
    """Serve the mock DMP: ITI-41 at /si-dmp-server/v2/services/repository, ITI-18 at …/registry, control at /_mock/."""
    state.settings()  # logging as configured
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if client_ca is not None and tls_cert is None:
        raise ConfigError("--client-ca (mutual TLS) needs --tls-cert and --tls-key")
    for path in (tls_cert, tls_key, client_ca, trust_ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path}: file not found")
    tls = TlsFiles(tls_cert, tls_key, client_ca) if tls_cert and tls_key else None
    if tls is not None:
        _check_tls(tls)
        warn_if_exposed(tls.key, "--tls-key")
    control = _control_plane(host, control)
    require_driver(db, "mock store")
    config = MockConfig(
        db_url=db, rate=rate, unknown_patients=unknown_patients.value.upper(), control=control,
        max_body_bytes=max_body_mb * 1024 * 1024, trust_ca=trust_ca,
    )  # fmt: skip
    try:
        server_config = uvicorn_config(
            config,
            host,
            port,
            tls,
            log_level=(state.log_level or state.settings().logging.level).lower(),
        )
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(
            f"--db {describe_url(db)}: the store cannot be opened ({type(exc).__name__}: {getattr(exc, 'orig', None) or exc})"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(f"the TLS files cannot be used: {exc}") from None
    seeded = _seed(server_config.app.state.registry) if seed_from_dpi else None
    # Bind here rather than in uvicorn, which exits with its own code when the port is taken.
    try:
        listener = socket.create_server((host, port))
    except (OSError, OverflowError) as exc:
        raise ConfigError(
            f"cannot serve on {host}:{port}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    with listener:
        scheme = "https" if tls else "http"
        bound = listener.getsockname()[1]
        if port_file is not None:
            try:
                write_output(port_file, f"{bound}\n")
            except OSError as exc:
                raise ConfigError(
                    f"--port-file {port_file}: cannot write: {exc.strerror or exc}"
                ) from None
        repository = f"{scheme}://{host}:{bound}{REPOSITORY_PATH}"
        dmp_url = f"{scheme}://{host}:{bound}{SERVICES_PATH}"
        if exit_with_parent:
            # Watching from before the banner: the starter may be killed the moment it has read
            # it, and a watch begun after that would take the adoptive parent for the real one.
            _stop_when_orphaned()
        # The address is the command's output (stdout, one line, whatever the log level): the
        # operator and the programs that start the mock (`connectors.dmp_mock.process`) read it.
        # The log event beside it carries the same facts as fields for JSON log readers.
        typer.echo(
            f"{BANNER} {repository}; set dmp.url = {dmp_url}"
            + (f"; {seeded} live-sent documents seeded from the DPI" if seeded is not None else "")
        )
        sys.stdout.flush()
        log.info(
            "mock_dmp_listening",
            repository=repository,
            dmp_url=dmp_url,
            port=bound,
            store=describe_url(db),
            mutual_tls=client_ca is not None,
            control_plane=control,
            seeded_from_dpi=seeded,
        )
        uvicorn.Server(server_config).run(sockets=[listener])


def _stop_when_orphaned() -> None:
    """SIGTERM to ourselves (uvicorn's graceful stop) once our parent is gone: a demo or a test
    killed with -9 cannot stop its mock, and a mock left behind keeps its port and its store."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.warning("mock_dmp.orphaned", parent=parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _host_is_loopback(host: str) -> bool:
    """True when every address `host` stands for is a loopback one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def _control_plane(host: str, asked: bool | None) -> bool:
    """The control plane resets and rewrites the store: off on a reachable host unless asked."""
    if _host_is_loopback(host):
        return True if asked is None else asked
    if asked is None:
        log.warning(
            "mock.control_off",
            detail=f"--host {host} is not a loopback address: the control plane /_mock/ is off "
            "(pass --control to serve it, to loopback peers only)",
        )
        return False
    if asked:
        log.warning(
            "mock.control_on",
            detail=f"--control on --host {host}: /_mock/ answers loopback peers only",
        )
    return asked


def _seed(registry: Registry) -> int:
    """Store the live feed's documents of the configured DPI; how many were new."""
    settings = state.settings()
    settings.require("dpi.url")
    engine = open_engine(settings.dpi.url or "", "DPI", must_exist=True)
    try:
        entries = [SeedEntry(**e) for e in live_feed_documents(engine)]  # type: ignore[arg-type]
    finally:
        engine.dispose()
    try:
        return seed(registry, entries)["seeded"]
    except SeedConflict as exc:
        raise ConfigError(
            f"--seed-from-dpi: the mock's store disagrees with the DPI: {exc}"
        ) from None


def _check_tls(tls: TlsFiles) -> None:
    """Load the TLS files now, so a file that is not PEM is one line naming it, not uvicorn's error."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"--tls-cert {tls.cert} / --tls-key {tls.key}: not a PEM certificate and its private "
            f"key ({getattr(exc, 'reason', None) or exc})"
        ) from None
    if tls.client_ca is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--client-ca {tls.client_ca}: not a PEM CA certificate "
                f"({getattr(exc, 'reason', None) or exc})"
            ) from None

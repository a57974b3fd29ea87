"""DMP clients made from the settings: endpoint, VIHF identity, mutual TLS, timeouts, pool size.

    async with async_dmp_client(settings) as dmp:     # the sender (one pool for the whole run)
        result = await dmp.submit(patient_id, documents)

`connectors` never imports `backfill`, so the bridge from `[dmp]` / `[vihf]` / `[establishment]`
to the client's arguments lives here. Problems with the TLS files are a ConfigError naming the
key, raised before anything is sent.
"""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path
from typing import TypedDict

import httpx

from backfill.config import Settings
from backfill.errors import ConfigError
from backfill.key_files import warn_if_exposed
from cda.entry import xon
from connectors.dmp.client import AsyncDmpClient, DmpClient
from connectors.dmp.errors import SigningMaterialError
from connectors.dmp.signing import Signer
from connectors.dmp.sockets import AsyncioTransport

__all__ = ["async_dmp_client", "dmp_client", "http_options"]


def _tls_context(settings: Settings) -> ssl.SSLContext:
    dmp = settings.dmp
    if dmp.tls_cert is None and dmp.tls_key is None and dmp.ca_bundle is None:
        # httpx's default (what `verify=True` means to it), as a context: the async client's
        # transport hands it to httpcore as is.
        return httpx.create_ssl_context()
    if (dmp.tls_cert is None) != (dmp.tls_key is None):
        raise ConfigError("dmp.tls_cert and dmp.tls_key go together (mutual TLS)")
    files: list[tuple[str, Path]] = [
        (name, path)
        for name, path in (
            ("ca_bundle", dmp.ca_bundle),
            ("tls_cert", dmp.tls_cert),
            ("tls_key", dmp.tls_key),
        )
        if path is not None
    ]
    for name, path in files:
        if not path.is_file():
            raise ConfigError(f"dmp.{name}: {path}: file not found")
    if dmp.tls_key is not None:
        warn_if_exposed(dmp.tls_key, "dmp.tls_key")
    try:
        context = (
            ssl.create_default_context(cafile=str(dmp.ca_bundle))
            if dmp.ca_bundle is not None
            else httpx.create_ssl_context()
        )
        if dmp.tls_cert is not None and dmp.tls_key is not None:
            context.load_cert_chain(str(dmp.tls_cert), str(dmp.tls_key))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"dmp TLS files ({', '.join(str(p) for _, p in files)}) cannot be used: {exc}"
        ) from None
    return context


class HttpOptions(TypedDict):
    """Keyword arguments of an httpx client for the DMP."""

    verify: ssl.SSLContext
    timeout: httpx.Timeout
    limits: httpx.Limits


def http_options(settings: Settings) -> HttpOptions:
    """Keyword arguments of the httpx client for the DMP: TLS, timeouts, pool limits."""
    dmp = settings.dmp
    return {
        "verify": _tls_context(settings),
        # A write of a large set is part of the wait for the answer; the pool wait is ours.
        "timeout": httpx.Timeout(
            connect=dmp.connect_timeout,
            read=dmp.read_timeout,
            write=dmp.read_timeout,
            pool=dmp.read_timeout,
        ),
        "limits": httpx.Limits(
            max_connections=dmp.concurrency, max_keepalive_connections=dmp.concurrency
        ),
    }


def _client_options(settings: Settings, url: str | None) -> dict[str, object]:
    services_url = url or settings.dmp.url
    if services_url is None:
        settings.require("dmp.url")
    establishment = settings.establishment.as_cda()
    files = settings.dmp.signing_files()
    if settings.dmp.signing_key is not None:
        warn_if_exposed(settings.dmp.signing_key, "dmp.signing_key")
    try:
        signer = Signer.from_files(*files) if files is not None else None
    except SigningMaterialError as exc:
        raise ConfigError(f"[dmp] signing files: {exc}") from None
    return {
        "services_url": services_url,
        "identity": settings.vihf_identity(),
        "signer": signer,
        "source_id": establishment.source_oid,
        "institution_xon": xon(establishment),
    }


def async_dmp_client(settings: Settings, *, url: str | None = None) -> AsyncDmpClient:
    """The sender's client: one AsyncClient (keep-alive pool of `dmp.concurrency` connections)."""
    options = _client_options(settings, url)
    http = http_options(settings)
    if _proxied(str(options["services_url"])):
        # httpx's own transports take the proxy from the environment; a transport of ours
        # would turn that off.
        return AsyncDmpClient(**options, http=httpx.AsyncClient(**http))  # type: ignore[arg-type]
    # On asyncio's own sockets (`connectors.dmp.sockets`): a refused client certificate is
    # read reliably, and each POST costs the event loop less CPU than over anyio.
    transport = AsyncioTransport(verify=http["verify"], limits=http["limits"])
    return AsyncDmpClient(**options, transport=transport, timeout=http["timeout"])  # type: ignore[arg-type]


def _proxied(url: str) -> bool:
    """Whether the environment sends `url` through a proxy (`HTTPS_PROXY`, `ALL_PROXY`, less
    `NO_PROXY`), as httpx reads it."""
    target = httpx.URL(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(target.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(target.host, proxies)


def dmp_client(settings: Settings, *, url: str | None = None) -> DmpClient:
    """A synchronous client with the same settings (the demo, one-off tools)."""
    options = _client_options(settings, url)
    return DmpClient(**options, http=httpx.Client(**http_options(settings)))  # type: ignore[arg-type]

"""The engine's settings: typed, validated once, from `backfill.toml` and `BACKFILL_…` variables.

Precedence: environment variables over the TOML file over defaults. A key `[dmp] rate` is
overridden by `BACKFILL_DMP_RATE`; sections have no underscore in their names, so the first
underscore after the prefix always separates section and key. With no file at all,
`BACKFILL_DPI_URL`, `BACKFILL_LEDGER_URL` and `BACKFILL_DMP_URL` suffice: every other key has the
default of the synthetic establishment (a fake FINESS, test OIDs).

Any problem becomes one `ConfigError` naming the key and the file or variable it came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from backfill.bonus import BonusError, window_named
from backfill.errors import ConfigError
from cda.codes import FACILITY_TYPES
from cda.entry import system_xcn
from cda.model import Establishment
from connectors.dmp.client import services_url_problem
from connectors.dmp.vihf import FACILITY_TYPE_SCHEME, VihfIdentity
from connectors.dpi.contract import DEFAULT_LIVE_FEED_KINDS, DOCUMENT_KINDS

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "DmpSettings",
    "DpiSettings",
    "EstablishmentSettings",
    "IndicatorSettings",
    "LedgerSettings",
    "LoggingSettings",
    "RulesSettings",
    "RunSettings",
    "Settings",
    "VihfSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = Path("backfill.toml")
ENV_PREFIX = "BACKFILL_"

# The TOML file being loaded; a context variable so Settings stays one importable class.
_loading_file: ContextVar[Path | None] = ContextVar("_loading_file", default=None)

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_FINESS = re.compile(r"^(?:[0-9]{2}|2A|2B)[0-9]{7}$")


def _check_oid(value: str) -> str:
    if not _OID.match(value) or len(value) > 64:
        raise ValueError("must be an OID: digits separated by dots, e.g. 1.2.250.1.999.42")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EstablishmentSettings(_Section):
    """Who sends: the establishment, as the CDA custodian and the XDS author institution."""

    finess_geo: str = Field("999999990", description="FINESS géographique (EG), 9 characters")
    finess_legal: str = Field("999999982", description="FINESS juridique (EJ), 9 characters")
    name: str = Field(
        "CH Fictif de Test",
        min_length=1,
        max_length=200,
        description="name shown as custodian and author institution",
    )
    oid_root: str = Field(
        "1.2.250.1.999.42",
        description="the establishment's OID; IPPs, stays and document sets are identified under it",
    )
    facility_type_code: str = Field("SA01", description="JDV_J02 healthcareFacilityTypeCode")

    @field_validator("finess_geo", "finess_legal")
    @classmethod
    def _finess(cls, value: str) -> str:
        if not _FINESS.match(value):
            raise ValueError("must be a FINESS number: 9 characters, digits (2A/2B for Corsica)")
        return value

    _oid = field_validator("oid_root")(classmethod(lambda cls, v: _check_oid(v)))

    @field_validator("facility_type_code")
    @classmethod
    def _facility_type(cls, value: str) -> str:
        if value not in FACILITY_TYPES:
            raise ValueError(
                f"{value!r} is not in the JDV_J02 value set: one of {', '.join(FACILITY_TYPES)}"
            )
        return value

    def as_cda(self) -> Establishment:
        """The builder's view of the establishment; it derives the OIDs under `oid_root`."""
        return Establishment(
            finess_geo=self.finess_geo,
            name=self.name,
            oid_root=self.oid_root,
            facility_type_code=self.facility_type_code,
        )


class DpiSettings(_Section):
    """The DPI database, read only, through the five relations of the DPI contract."""

    url: str | None = Field(None, description="SQLAlchemy URL of the DPI (views of the contract)")
    fetch_size: int = Field(
        5000,
        ge=100,
        le=1_000_000,
        description="rows per round trip when streaming (a chunk of rows is in memory at once, about 0.8 MiB a thousand)",
    )
    content_root: Path | None = Field(
        None,
        description="the folder of the DPI's `file:` contents: relative URIs are taken under it and nothing outside it is read (unset: no `file:` content is read, such documents get content_missing)",
    )


class LedgerSettings(_Section):
    """The engine's own state (tables `bf_…`)."""

    url: str = Field("sqlite:///backfill-ledger.sqlite", description="SQLAlchemy URL of the ledger")


class DmpSettings(_Section):
    """The DMP endpoint and how hard the engine may push it.

    `url` is the **services base**, not a door: the engine posts ITI-41 submissions to
    `<url>/repository` and ITI-18 queries to `<url>/registry`. A value ending in `/repository` or
    `/registry` is refused with the base to use instead. For the mock DMP it is
    `http://127.0.0.1:8700/si-dmp-server/v2/services` (`backfill mock-dmp` prints it).
    `tls_cert` + `tls_key` (mutual TLS with the establishment's certificate) go together;
    `ca_bundle` replaces the default trust store. A TLS failure (the DMP's certificate not
    trusted, ours refused) stops the run with exit code 2, as a refused authentication does.
    """

    url: str | None = Field(
        None,
        description="the DMP services base, e.g. https://…/si-dmp-server/v2/services; the engine appends /repository (ITI-41) and /registry (ITI-18)",
    )
    environment: Literal["test", "production"] = Field(
        "test",
        description="the DMP's environment: a production DMP never gets a test or demo INS (OIDs …4.10, …4.11), a test DMP never a production one (…4.8, …4.9); such patients get `ins_wrong_environment`",
    )
    tls_cert: Path | None = Field(None, description="client certificate (PEM) for mutual TLS")
    tls_key: Path | None = Field(None, description="private key (PEM) of the client certificate")
    ca_bundle: Path | None = Field(None, description="CA bundle that signs the DMP's certificate")
    signing_cert: Path | None = Field(
        None,
        description="certificate (PEM) that signs the VIHF and the submission sets; default: tls_cert",
    )
    signing_key: Path | None = Field(
        None, description="private key (PEM) of signing_cert; default: tls_key"
    )
    rate: float = Field(10.0, gt=0, le=10_000, description="documents per second, at most")
    concurrency: int = Field(4, ge=1, le=256, description="requests in flight, at most")
    connect_timeout: float = Field(10.0, gt=0, le=600, description="seconds to open a connection")
    read_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="seconds to wait for an answer; then the outcome is ambiguous",
    )
    max_documents_per_set: int = Field(
        10,
        ge=1,
        le=1000,
        description="a patient's documents are split into sets of at most this many",
    )
    max_bytes_per_set: int = Field(
        20_000_000,
        ge=10_000,
        le=2_000_000_000,
        description="… and of at most this many bytes of CDA",
    )
    max_attempts: int = Field(8, ge=1, le=100, description="attempts per document before giving up")
    max_retry_wait: float = Field(
        60.0, gt=0, le=3600, description="longer waits leave the run and become next_attempt_at"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and (problem := services_url_problem(value)) is not None:
            raise ValueError(problem)
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _pairs(self) -> DmpSettings:
        for cert, key in (("tls_cert", "tls_key"), ("signing_cert", "signing_key")):
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                raise ValueError(f"{cert} and {key} go together: set both or neither")
        if self.environment == "production" and (self.url or "").lower().startswith("http://"):
            raise ValueError(
                "environment = production needs an https:// url: the real DMP is reached over "
                "TLS with the establishment's certificate (plain http is for the mock)"
            )
        return self

    def signing_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) that sign what is sent: the signing pair, else the TLS pair."""
        if self.signing_cert is not None and self.signing_key is not None:
            return self.signing_cert, self.signing_key
        if self.tls_cert is not None and self.tls_key is not None:
            return self.tls_cert, self.tls_key
        return None


class RulesSettings(_Section):
    """Which selection rule file to apply."""

    file: str = Field(
        "history-5y.toml", description="a shipped rule file's name, or the path of your own"
    )


class LiveFeedSettings(_Section):
    """What the establishment's live DMP feed sends (catch-up rules, DS1.1/DS1.2, the synthetic DPI)."""

    kinds: list[str] = Field(
        list(DEFAULT_LIVE_FEED_KINDS),
        min_length=1,
        description='document kinds the live feed sends; a rule with kinds = "live_feed" takes these',
    )

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in DOCUMENT_KINDS]
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}: one of {', '.join(DOCUMENT_KINDS)}")
        return value


class VihfSettings(_Section):
    """The VIHF SAML assertion sent with each request (indirect authentication), and the sending
    system as the author of every submission set."""

    structure_id: str | None = Field(
        None, description="Identifiant_Structure; default: 1 + the geographic FINESS"
    )
    subject_id: str = Field(
        "dmp-backfill, reprise d'historique",
        min_length=1,
        description="subject-id: the software's name, model and service",
    )
    responsible: str = Field(
        "dmp-backfill",
        min_length=1,
        description="NameID: the person responsible for the automated processing",
    )
    role: str = Field("AUTOMATE", description="JDV_J65 subject:role for automated processing")
    sector: str | None = Field(
        None,
        description="Secteur_Activite (JDV_J61, code^1.2.250.1.71.4.2.4); default: the establishment's facility_type_code",
    )
    lps_name: str = Field("dmp-backfill", min_length=1, description="LPS_Nom: the software's name")
    lps_version: str = Field("0.1.0", min_length=1, description="LPS_Version")
    lps_id: str = Field("dmp-backfill", min_length=1, description="LPS_ID")
    homologation_id: str = Field(
        "NON-HOMOLOGUE", min_length=1, description="LPS_ID_HOMOLOGATION_DMP given by the CNDA"
    )
    system_local_id: str = Field(
        "DMP-BACKFILL",
        min_length=1,
        max_length=64,
        description="the sending system's id in the establishment: SubmissionSet author 3<FINESS>/<this>",
    )
    system_model: str = Field(
        "backfill",
        min_length=1,
        max_length=64,
        description="the sending system's model, second name of the SubmissionSet author",
    )

    def as_identity(
        self,
        default_structure_id: str,
        *,
        finess: str | None = None,
        facility_type_code: str = "SA01",
    ) -> VihfIdentity:
        """What the VIHF of every request says (the structure defaults to 1 + FINESS).

        With `finess`, the identity also names the sending system as submission-set author.
        """
        return VihfIdentity(
            structure_id=self.structure_id or default_structure_id,
            subject_id=self.subject_id,
            responsible=self.responsible,
            role=self.role,
            sector=self.sector or f"{facility_type_code}^{FACILITY_TYPE_SCHEME}",
            lps_name=self.lps_name,
            lps_version=self.lps_version,
            lps_id=self.lps_id,
            homologation_id=self.homologation_id,
            author_person=(
                system_xcn(finess, self.system_local_id, self.lps_name, self.system_model)
                if finess
                else None
            ),
        )


class RunSettings(_Section):
    """How a run behaves."""

    lookahead_days: int = Field(
        7, ge=0, le=365, description="patients with a stay planned this many days ahead go first"
    )
    no_dmp_recheck_days: int = Field(
        30, ge=1, le=3650, description="a patient without a DMP is asked again after this many days"
    )
    lock_file: Path = Field(
        Path("backfill.lock"), description="held during a run so two runs never overlap"
    )
    metrics_file: Path | None = Field(
        None, description="Prometheus textfile written at the end of a run"
    )
    build_pool: Literal["process", "thread"] = Field(
        "process",
        description="where documents are read and built while others are sent: worker processes "
        "(a core of their own) or threads (less memory)",
    )


class IndicatorSettings(_Section):
    """DS1.4, DS1.1/DS1.2 and the bonus estimate (`backfill indicator`, `bonus`, `report`).

    See [indicator.md](indicator.md).
    """

    encounter_types: tuple[str, ...] = Field(
        ("IMP",),
        min_length=1,
        description="JDV_J142 encounter types counted as séjours (IMP: hospitalisation, full or partial, HAD)",
    )
    activity: int | None = Field(
        None,
        ge=0,
        le=1_600_000,
        description="the establishment's 2019 combined activity (SAE and PMSI), for the bonus estimate",
    )
    window: str | None = Field(
        None,
        description="the measurement window for the bonus estimate: S1-2022, S2-2022, S1-2023 or S2-2023",
    )

    @field_validator("encounter_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = ("IMP", "AMB", "EMER", "EXTERNE", "SEANCE")
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a JDV_J142 code ({', '.join(known)})")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            return window_named(value).name
        except BonusError as exc:
            raise ValueError(str(exc).removeprefix("--window ")) from None


class LoggingSettings(_Section):
    """Where and how the engine logs (always stderr; never personal data)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="auto: JSON lines when stderr is not a terminal, readable lines when it is",
    )


class Settings(BaseSettings):
    """Every setting of the engine. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )
    _source_file: Path | None = PrivateAttr(default=None)

    establishment: EstablishmentSettings = EstablishmentSettings()
    dpi: DpiSettings = DpiSettings()
    ledger: LedgerSettings = LedgerSettings()
    dmp: DmpSettings = DmpSettings()
    rules: RulesSettings = RulesSettings()
    live_feed: LiveFeedSettings = LiveFeedSettings()
    vihf: VihfSettings = VihfSettings()
    run: RunSettings = RunSettings()
    indicator: IndicatorSettings = IndicatorSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _loading_file.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def source_file(self) -> Path | None:
        """The TOML file these settings were read from, if any."""
        return self._source_file

    @property
    def structure_id(self) -> str:
        return self.vihf.structure_id or f"1{self.establishment.finess_geo}"

    def vihf_identity(self) -> VihfIdentity:
        """The VIHF identity of this establishment, the sending system as set author included."""
        return self.vihf.as_identity(
            self.structure_id,
            finess=self.establishment.finess_geo,
            facility_type_code=self.establishment.facility_type_code,
        )

    def require(self, *dotted: str) -> None:
        """Fail with a ConfigError if any of these keys (e.g. "dpi.url") has no value."""
        for key in dotted:
            section, name = key.split(".", 1)
            if getattr(getattr(self, section), name) is None:
                raise ConfigError(
                    f"{key} is not set: put `{name} = …` under [{section}] in "
                    f"{self._source_file or DEFAULT_CONFIG_FILE} or set {_env_name(section, name)}"
                )


def _env_name(section: str, name: str) -> str:
    return f"{ENV_PREFIX}{section}_{name}".upper()


def _describe(error: dict[str, Any], toml_file: Path | None, toml_data: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc) or "(file)"
    source = "default"
    if len(loc) >= 2 and _env_name(loc[0], loc[1]) in os.environ:
        source = _env_name(loc[0], loc[1])
    elif toml_file is not None:
        node: Any = toml_data
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None or (loc and loc[0] in toml_data):
            source = str(toml_file)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling and its section)"
    if len(loc) == 1 and loc[0] in toml_data and not isinstance(toml_data[loc[0]], dict):
        message = f"[{loc[0]}] must be a table of keys"
    return f"{source}: {key}: {message}"


def load_settings(config_file: Path | None = None) -> Settings:
    """Read `config_file` (else `./backfill.toml` if present) and the environment, validated.

    A file that was asked for but is missing, unparsable TOML, an unknown key, a value of the
    wrong type: each gives a ConfigError naming the key and the file or variable.
    """
    path = config_file
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    toml_data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found")
        try:
            toml_data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}") from None

    token = _loading_file.set(path)
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [_describe(e, path, toml_data) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    finally:
        _loading_file.reset(token)
    settings._source_file = path
    return settings

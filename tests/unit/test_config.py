"""Settings: TOML + environment, validated once, every mistake named with its key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill.config import Settings, load_settings
from backfill.errors import ConfigError
from connectors.dmp.client import SERVICES_PATH

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "backfill.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BACKFILL_") and name not in (
            "BACKFILL_SHARED_DIR",
            "BACKFILL_TEST_PG_URL",
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray ./backfill.toml


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "backfill.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_three_variables_suffice_with_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """BACKFILL_DPI_URL, BACKFILL_LEDGER_URL and BACKFILL_DMP_URL work with no file at all."""
    monkeypatch.setenv("BACKFILL_DPI_URL", "sqlite:///dpi.sqlite")
    monkeypatch.setenv("BACKFILL_LEDGER_URL", "postgresql+psycopg://u@h/ledger")
    monkeypatch.setenv("BACKFILL_DMP_URL", "https://dmp.example/si-dmp-server/v2/services/")
    settings = load_settings()
    assert settings.dpi.url == "sqlite:///dpi.sqlite"
    assert settings.ledger.url == "postgresql+psycopg://u@h/ledger"
    assert settings.dmp.url == "https://dmp.example/si-dmp-server/v2/services"
    assert settings.source_file is None
    assert settings.establishment.finess_geo == "999999990"  # synthetic establishment defaults


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the file is overridden by its BACKFILL_<SECTION>_<KEY> variable."""
    path = _write(tmp_path, "[dmp]\nrate = 5\nmax_documents_per_set = 3\n")
    monkeypatch.setenv("BACKFILL_DMP_RATE", "2.5")
    settings = load_settings(path)
    assert settings.dmp.rate == 2.5
    assert settings.dmp.max_documents_per_set == 3
    assert settings.source_file == path


def test_default_file_in_the_current_directory_is_read(tmp_path: Path) -> None:
    """Without --config, ./backfill.toml is used when present."""
    _write(tmp_path, '[establishment]\nname = "CH de Test-sur-Mer"\n')
    assert load_settings().establishment.name == "CH de Test-sur-Mer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[dmp]\nrate = -1\n", "backfill.toml: dmp.rate: Input should be greater than 0"),
        ("[dmp]\nrtae = 1\n", "backfill.toml: dmp.rtae: unknown key"),
        ("[dmpp]\nrate = 1\n", "backfill.toml: dmpp: unknown key"),
        ('[dmp]\nurl = "ftp://x"\n', "dmp.url: must be an http:// or https:// URL"),
        (
            '[dmp]\nurl = "https://dmp.example/si-dmp-server/v2/services/repository"\n',
            "dmp.url: is the repository endpoint; give the services base instead "
            "(https://dmp.example/si-dmp-server/v2/services)",
        ),
        (
            '[establishment]\nfiness_geo = "12345"\n',
            "establishment.finess_geo: must be a FINESS number",
        ),
        ('[establishment]\noid_root = "1.2.x"\n', "establishment.oid_root: must be an OID"),
        ('[logging]\nlevel = "LOUD"\n', "logging.level: Input should be"),
        ("dmp = 3\n", "[dmp] must be a table of keys"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each wrong value gives a ConfigError (exit code 2) whose message names file and key."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert expected in str(exc.value)
    assert exc.value.exit_code == 2


def test_a_wrong_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad BACKFILL_… value is reported against the variable, not a file."""
    monkeypatch.setenv("BACKFILL_DMP_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match=r"BACKFILL_DMP_CONCURRENCY: dmp.concurrency"):
        load_settings()


def test_unparsable_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    """Broken TOML and an absent --config file are clear errors, not tracebacks."""
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "[dmp\nrate = 1"))


def test_require_names_the_key_the_file_and_the_variable() -> None:
    """A command that needs the DPI says exactly what to set."""
    with pytest.raises(ConfigError) as exc:
        load_settings().require("dpi.url")
    assert "dpi.url is not set" in str(exc.value)
    assert "BACKFILL_DPI_URL" in str(exc.value)


def test_the_shipped_sample_is_valid_and_complete() -> None:
    """samples/backfill.toml loads and sets every section the engine knows."""
    import tomllib

    settings = load_settings(SAMPLE)
    sections = set(tomllib.loads(SAMPLE.read_text(encoding="utf-8")))
    assert sections == set(Settings.model_fields)
    # The services base, to which the client appends its doors; that the sample actually
    # submits is tests/integration/test_dmp_client.py::test_the_sample_configuration_submits_to_the_mock.
    assert settings.dmp.url is not None
    assert settings.dmp.url.endswith(SERVICES_PATH)


def test_derived_establishment_oids() -> None:
    """IPP, stay, document-set and source OIDs hang under the establishment's root."""
    est = load_settings().establishment.as_cda()
    assert (est.ipp_oid, est.stay_oid, est.document_set_oid, est.source_oid) == (
        "1.2.250.1.999.42.1",
        "1.2.250.1.999.42.2",
        "1.2.250.1.999.42.3",
        "1.2.250.1.999.42.4",
    )


def test_every_key_is_documented() -> None:
    """docs/configuration.md lists every section and key the engine accepts."""
    doc = (SAMPLE.parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in doc
        for key in field.annotation.model_fields:
            assert f"`{key}`" in doc, f"{section}.{key} is not documented"


@pytest.mark.parametrize(
    ("environment", "url", "accepted"),
    [
        ("production", "http://dmp.example/si-dmp-server/v2/services", False),
        ("production", "https://dmp.example/si-dmp-server/v2/services", True),
        ("test", "http://127.0.0.1:8700/si-dmp-server/v2/services", True),
    ],
)
def test_the_production_dmp_is_never_reached_over_plain_http(
    monkeypatch: pytest.MonkeyPatch, environment: str, url: str, accepted: bool
) -> None:
    monkeypatch.setenv("BACKFILL_DMP_ENVIRONMENT", environment)
    monkeypatch.setenv("BACKFILL_DMP_URL", url)
    if accepted:
        assert load_settings().dmp.url == url
        return
    with pytest.raises(ConfigError, match=r"production needs an https:// url"):
        load_settings()

"""Settings: defaults under the project home, synoforecast.yaml values, env overrides and refusals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from synoforecast.settings import Settings, SettingsError, load_settings


def settings_for(home: Path, yaml_text: str | None = None, **env: str) -> Settings:
    if yaml_text is not None:
        (home / "synoforecast.yaml").write_text(yaml_text)
    return load_settings({"SYNOFORECAST_HOME": str(home), **env})


def test_defaults_live_under_the_home(tmp_path):
    s = settings_for(tmp_path)
    assert s.home == tmp_path.resolve()
    assert s.data_dir == tmp_path.resolve() / "data"
    assert s.inbox_dir == tmp_path.resolve() / "data" / "raw"
    assert s.dagster_home == tmp_path.resolve() / "data" / "dagster_home"
    assert s.pgdata_dir == s.data_dir / "pgdata"
    assert s.ingestion_dir == s.data_dir / "processed" / "ingestion"
    assert s.forecasts_dir == s.data_dir / "processed" / "forecasts"
    assert s.warehouse_url is None
    assert (
        s.partitions_start,
        s.fiscal_year_start_month,
        s.season_length,
        s.top_customers_n,
        s.quarantine_max_share,
    ) == (None, 1, 4, 20, 0.02)


def test_process_environment_is_not_consulted_when_env_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNOFORECAST_TOP_CUSTOMERS_N", "99")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    s = settings_for(tmp_path)
    assert s.top_customers_n == 20
    assert s.dagster_home == tmp_path.resolve() / "data" / "dagster_home"


def test_yaml_values_are_used(tmp_path):
    s = settings_for(
        tmp_path,
        """
data_dir: /srv/synoforecast
warehouse_url: postgresql://forecast:secret@db.internal:5433/sales
partitions_start: 2021-04-01
fiscal_year_start_month: 4
season_length: 4
top_customers_n: 15
quarantine_max_share: 0.05
""",
    )
    assert s.data_dir == Path("/srv/synoforecast")
    assert s.inbox_dir == Path("/srv/synoforecast/raw")  # follows the data folder
    assert s.warehouse_url == "postgresql://forecast:secret@db.internal:5433/sales"
    assert s.partitions_start == dt.date(2021, 4, 1)
    assert s.fiscal_year_start_month == 4
    assert s.top_customers_n == 15
    assert s.quarantine_max_share == 0.05


def test_env_overrides_yaml(tmp_path):
    s = settings_for(
        tmp_path,
        "top_customers_n: 15\npartitions_start: '2021-04-01'\ninbox_dir: /yaml/inbox\n",
        SYNOFORECAST_TOP_CUSTOMERS_N="30",
        SYNOFORECAST_PARTITIONS_START="2022-10-01",
        SYNOFORECAST_INBOX=str(tmp_path / "nas"),
        SYNOFORECAST_QUARANTINE_MAX_SHARE="0",
        DAGSTER_HOME=str(tmp_path / "dh"),
    )
    assert s.top_customers_n == 30
    assert s.partitions_start == dt.date(2022, 10, 1)
    assert s.inbox_dir == (tmp_path / "nas").resolve()
    assert s.quarantine_max_share == 0.0
    assert s.dagster_home == (tmp_path / "dh").resolve()


def test_empty_env_value_does_not_override_yaml(tmp_path):
    s = settings_for(tmp_path, "top_customers_n: 15\n", SYNOFORECAST_TOP_CUSTOMERS_N="")
    assert s.top_customers_n == 15


def test_explicit_config_file(tmp_path):
    config = tmp_path / "elsewhere.yaml"
    config.write_text("season_length: 8\n")
    s = load_settings({"SYNOFORECAST_HOME": str(tmp_path), "SYNOFORECAST_CONFIG": str(config)})
    assert s.season_length == 8


def test_empty_yaml_file_gives_defaults(tmp_path):
    assert settings_for(tmp_path, "").top_customers_n == 20


@pytest.mark.parametrize(
    "env_key, value, setting",
    [
        ("SYNOFORECAST_TOP_CUSTOMERS_N", "twenty", "top_customers_n"),
        ("SYNOFORECAST_SEASON_LENGTH", "4.5", "season_length"),
        ("SYNOFORECAST_FISCAL_YEAR_START_MONTH", "April", "fiscal_year_start_month"),
        ("SYNOFORECAST_QUARANTINE_MAX_SHARE", "1", "quarantine_max_share"),
        ("SYNOFORECAST_QUARANTINE_MAX_SHARE", "-0.1", "quarantine_max_share"),
        ("SYNOFORECAST_QUARANTINE_MAX_SHARE", "2%", "quarantine_max_share"),
        ("SYNOFORECAST_PARTITIONS_START", "2020-13-01", "partitions_start"),
        ("SYNOFORECAST_PARTITIONS_START", "last year", "partitions_start"),
        ("SYNOFORECAST_FORECAST_PASS", "per-partition", "forecast_pass"),
        ("SYNOFORECAST_FORECAST_WORKERS", "0", "forecast_workers"),
        ("SYNOFORECAST_FORECAST_WORKERS", "two", "forecast_workers"),
    ],
)
def test_bad_env_values_name_the_setting_and_the_source(tmp_path, env_key, value, setting):
    with pytest.raises(SettingsError) as info:
        settings_for(tmp_path, **{env_key: value})
    message = str(info.value)
    assert f"setting {setting}" in message
    assert env_key in message
    assert repr(value) in message


def test_bad_yaml_value_names_the_setting_and_the_file(tmp_path):
    with pytest.raises(SettingsError) as info:
        settings_for(tmp_path, "top_customers_n: many\n")
    assert "setting top_customers_n" in str(info.value)
    assert "synoforecast.yaml" in str(info.value)


@pytest.mark.parametrize("value", ["2020-02-01", "2020-01-15", "2020-12-01"])
def test_partitions_start_must_be_a_quarter_start(tmp_path, value):
    with pytest.raises(SettingsError, match="partitions_start.*quarter start"):
        settings_for(tmp_path, SYNOFORECAST_PARTITIONS_START=value)
    with pytest.raises(SettingsError, match="partitions_start"):
        settings_for(tmp_path, f"partitions_start: {value}\n")


@pytest.mark.parametrize("value, expected", [("2020-04-01", dt.date(2020, 4, 1)), ("2019-10-01", dt.date(2019, 10, 1))])
def test_quarter_starts_are_accepted(tmp_path, value, expected):
    assert settings_for(tmp_path, SYNOFORECAST_PARTITIONS_START=value).partitions_start == expected


def test_unknown_yaml_key_is_refused_listing_the_known_ones(tmp_path):
    with pytest.raises(SettingsError) as info:
        settings_for(tmp_path, "top_customer_n: 10\n")
    assert "unknown settings ['top_customer_n']" in str(info.value)
    assert "'top_customers_n'" in str(info.value)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="must hold a mapping"):
        settings_for(tmp_path, "- a\n- b\n")


def test_fiscal_month_out_of_range_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="fiscal_year_start_month"):
        settings_for(tmp_path, SYNOFORECAST_FISCAL_YEAR_START_MONTH="13")


def test_yaml_aliases_are_validated_against_the_contract(tmp_path):
    (tmp_path / "synoforecast.yaml").write_text("aliases:\n  svr-rm:\n    units: [Menge, Stück]\n")
    settings = load_settings({"SYNOFORECAST_HOME": str(tmp_path)})
    assert settings.aliases == {"SVR-RM": {"Units": ["Menge", "Stück"]}}
    (tmp_path / "synoforecast.yaml").write_text("aliases:\n  SVR-RM:\n    Colour: [Farbe]\n")
    with pytest.raises(SettingsError, match="unknown column 'Colour'"):
        load_settings({"SYNOFORECAST_HOME": str(tmp_path)})
    (tmp_path / "synoforecast.yaml").write_text("aliases:\n  Pivot:\n    Units: [x]\n")
    with pytest.raises(SettingsError, match="unknown sheet 'Pivot'"):
        load_settings({"SYNOFORECAST_HOME": str(tmp_path)})


def test_the_forecast_pass_is_rolling_unless_the_baseline_is_asked_for(tmp_path):
    assert settings_for(tmp_path).forecast_pass == "rolling"
    assert settings_for(tmp_path, SYNOFORECAST_FORECAST_PASS="per_partition").forecast_pass == "per_partition"


def test_the_fits_use_both_cores_unless_told_otherwise(tmp_path):
    import os

    assert settings_for(tmp_path).forecast_workers == min(2, os.cpu_count() or 1)
    assert settings_for(tmp_path, SYNOFORECAST_FORECAST_WORKERS="1").forecast_workers == 1


def test_a_home_without_its_own_dagster_yaml_gets_the_packaged_instance_config(tmp_path, monkeypatch):
    """An installed synoforecast run from any folder: without the packaged config its Dagster
    instance would run on Dagster's defaults (no pooled storage, no run concurrency limits)."""
    from synoforecast.settings import PACKAGED_INSTANCE_CONFIG, ensure_dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = settings_for(tmp_path / "elsewhere")
    home = ensure_dagster_home(settings)
    copied = (home / "dagster.yaml").read_text()
    assert copied == PACKAGED_INSTANCE_CONFIG.read_text()
    assert "synoforecast.instance.sqlite_storage" in copied and "tag_concurrency_limits" in copied
    repo_config = Path(__file__).resolve().parents[2] / "dagster.yaml"
    assert repo_config.read_text() == copied, "the checkout's dagster.yaml is the packaged one"


def test_a_home_with_its_own_dagster_yaml_keeps_it(tmp_path, monkeypatch):
    from synoforecast.settings import ensure_dagster_home

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    home = ensure_dagster_home(settings_for(tmp_path / "own"))
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_restatement_shares_default_to_1_and_5_percent_and_are_validated(tmp_path):
    defaults = settings_for(tmp_path)
    assert (defaults.restatement_material_share, defaults.restatement_warn_share) == (0.01, 0.05)
    configured = settings_for(
        tmp_path, "restatement_material_share: 0.002\n", SYNOFORECAST_RESTATEMENT_WARN_SHARE="0.1"
    )
    assert (configured.restatement_material_share, configured.restatement_warn_share) == (0.002, 0.1)
    with pytest.raises(SettingsError, match="restatement_warn_share.*SYNOFORECAST_RESTATEMENT_WARN_SHARE"):
        settings_for(tmp_path, SYNOFORECAST_RESTATEMENT_WARN_SHARE="5%")


def test_freshness_limits_default_to_8_and_10_days_and_are_validated(tmp_path):
    defaults = settings_for(tmp_path)
    assert (defaults.freshness_max_age_days, defaults.quarter_close_grace_days) == (8, 10)
    configured = settings_for(tmp_path, "freshness_max_age_days: 15\n", SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS="0")
    assert (configured.freshness_max_age_days, configured.quarter_close_grace_days) == (15, 0)
    with pytest.raises(SettingsError, match="freshness_max_age_days.*SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS.*between 1"):
        settings_for(tmp_path, SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS="0")
    with pytest.raises(SettingsError, match="quarter_close_grace_days.*synoforecast.yaml"):
        settings_for(tmp_path, "quarter_close_grace_days: ten\n")


def test_every_setting_but_the_folders_given_by_home_has_one_variable():
    from synoforecast.settings import VARIABLES

    assert set(VARIABLES) == set(Settings.model_fields) - {"home", "dagster_home", "aliases"}
    assert VARIABLES["inbox_dir"] == "SYNOFORECAST_INBOX" and VARIABLES["max_smape"] == "SYNOFORECAST_MAX_SMAPE"


@pytest.mark.parametrize(
    "key, value, rule",
    [
        ("SYNOFORECAST_SHRINK_MAX_SHARE", "0", "must be > 0 and <= 1"),
        ("SYNOFORECAST_QUARANTINE_MAX_SHARE", "1", "must be >= 0 and < 1"),
        ("SYNOFORECAST_READER_MAX_COMPRESSION_RATIO", "1.5", "must be >= 2"),
        ("SYNOFORECAST_DATE_ORDER", "ymd", "must be one of day_first, month_first"),
        ("SYNOFORECAST_EARLIEST_SALE_DATE", "yesterday", "must be a date written YYYY-MM-DD"),
        ("SYNOFORECAST_TOP_CUSTOMERS_N", "15.5", "must be a whole number"),
    ],
)
def test_a_refusal_states_the_declared_rule(tmp_path, key, value, rule):
    with pytest.raises(SettingsError) as info:
        settings_for(tmp_path, **{key: value})
    assert str(info.value).endswith(f"is not valid ({rule})"), str(info.value)


def test_settings_cannot_be_changed_after_loading(tmp_path):
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        settings_for(tmp_path).top_customers_n = 3


def test_the_dask_scheduler_is_unset_by_default_and_must_be_an_address(tmp_path):
    assert settings_for(tmp_path).dask_scheduler is None
    given = settings_for(tmp_path, SYNOFORECAST_DASK_SCHEDULER="tcp://dask-scheduler.forecast.svc:8786")
    assert given.dask_scheduler == "tcp://dask-scheduler.forecast.svc:8786"
    assert settings_for(tmp_path, "dask_scheduler: 10.0.0.5:8786\n").dask_scheduler == "10.0.0.5:8786"
    with pytest.raises(
        SettingsError, match=r"dask_scheduler from SYNOFORECAST_DASK_SCHEDULER.*tcp://dask-scheduler:8786"
    ):
        settings_for(tmp_path, SYNOFORECAST_DASK_SCHEDULER="dask-scheduler")  # no port

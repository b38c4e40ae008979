"""The dbt resource: dagster-dbt's CLI without its per-invocation set-up the project never uses."""

import subprocess
import sys
from importlib.metadata import version

import dagster_dbt.core.resource as dbt_resource_module
from packaging.version import Version

from synoforecast.defs.resources import DbtResource, build_resources
from synoforecast.settings import DBT_PROJECT_DIR


def test_the_dbt_version_comes_from_the_installed_dbt_core_without_a_subprocess(monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dbt --version was run: {args}")

    monkeypatch.setattr(dbt_resource_module, "check_output", no_subprocess)
    resource = build_resources(env={})["dbt"]
    assert isinstance(resource, DbtResource)
    assert resource._cli_version == Version(version("dbt-core"))
    assert resource._initialize_dbt_core_adapter(["build"]) is None  # no in-process adapter per invocation


def test_another_dbt_executable_is_asked_for_its_version(tmp_path):
    fake = tmp_path / "dbt"  # an executable outside this interpreter's environment
    fake.write_text("#!/bin/sh\necho 'Core:\n  - installed: 9.8.7'\n")
    fake.chmod(0o755)
    resource = DbtResource(
        project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=str(fake)
    )
    assert resource._cli_version == Version("9.8.7")


def test_the_landing_and_interval_modules_load_without_statsforecast():
    code = (
        "import sys, synoforecast.lib.landing.cohorts, synoforecast.lib.landing.model, "
        "synoforecast.lib.forecasting.intervals, synoforecast.lib.forecasting.reconcile; "
        "loaded = sorted(m for m in ('statsforecast', 'statsmodels') if m in sys.modules); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_metabase_variables_are_checked_once_at_load_and_reach_the_resource_typed():
    import dagster as dg

    env = {
        "METABASE_URL": "http://mb:3000",
        "METABASE_API_KEY": "k-SECRET",
        "METABASE_CARD_IDS": "4, 5,4",
        "METABASE_TIMEOUT_S": "12.5",
        "METABASE_CACHE_INVALIDATE": "off",
    }
    resource = build_resources(env=env)["metabase"]
    assert resource.card_ids == [4, 5] and resource.timeout_s == 12.5 and resource.cache_invalidate is False
    assert isinstance(resource.api_key, dg.EnvVar) and resource.api_key == "METABASE_API_KEY"  # the name, not the key
    assert resource.misconfigured is None


def test_a_malformed_metabase_variable_fails_the_refresh_naming_it_not_the_code_location():
    import pytest

    from synoforecast.lib.activation.metabase import MetabaseError

    env = {"METABASE_URL": "http://mb:3000", "METABASE_API_KEY": "k-SECRET", "METABASE_RETRIES": "three"}
    resource = build_resources(env=env)["metabase"]  # loading does not raise
    with pytest.raises(MetabaseError, match="METABASE_RETRIES must be an integer, got 'three'"):
        resource.config()


def test_the_metabase_variables_are_named_once_from_the_fields():
    from synoforecast.lib.activation.metabase import MetabaseConfig, variable

    names = {variable(f) for f in MetabaseConfig.model_fields}
    assert {
        "METABASE_URL",
        "METABASE_USER",
        "METABASE_PASSWORD",
        "METABASE_CARD_IDS",
        "METABASE_SYNC_POLL_S",
        "METABASE_CACHE_INVALIDATE",
    } <= names and len(names) == len(MetabaseConfig.model_fields)


def test_the_smtp_variables_reach_the_webhooks_resource_typed_with_the_secrets_as_env_vars():
    import dagster as dg

    env = {
        "SMTP_HOST": "smtp.example.test",
        "SMTP_PORT": "2525",
        "SMTP_USERNAME": "forecast",
        "SMTP_PASSWORD": "smtp-pw-SECRET",
        "SMTP_FROM": "Synoforecast <forecast@example.test>",
        "SMTP_TO": "ops@example.test, sales@example.test",
        "SMTP_STARTTLS": "yes",
        "SMTP_TIMEOUT_S": "12",
    }
    resource = build_resources(env=env)["webhooks"]
    assert resource.smtp_port == 2525 and resource.smtp_timeout_s == 12.0 and resource.smtp_starttls is True
    assert resource.smtp_to == ["ops@example.test", "sales@example.test"]
    assert resource.smtp_from == "Synoforecast <forecast@example.test>"
    for name in ("smtp_host", "smtp_username", "smtp_password"):  # the UI shows the variable, not the value
        assert isinstance(getattr(resource, name), dg.EnvVar) and getattr(resource, name) == name.upper()
    assert resource.smtp_misconfigured is None and "smtp-pw-SECRET" not in repr(resource)


def test_half_an_email_configuration_fails_the_notifications_naming_it_not_the_code_location():
    import pytest

    from synoforecast.lib.activation.notify import NotifyError

    resource = build_resources(env={"SMTP_HOST": "smtp.example.test", "SMTP_PASSWORD": "pw-SECRET"})["webhooks"]
    with pytest.raises(NotifyError, match="SMTP_HOST is set but SMTP_FROM and SMTP_TO are not") as err:
        resource.config()
    assert "pw-SECRET" not in str(err.value)
    assert build_resources(env={})["webhooks"].config().channels() == []

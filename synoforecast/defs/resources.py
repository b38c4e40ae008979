"""Resources shared by the domains: the warehouse, dbt, Metabase, the notification channels
(webhooks and email) and the accuracy thresholds.

Every external setting reaches the assets through one of these typed
`ConfigurableResource`s, so the UI's resources page shows what a run will use. Secrets
and URLs are bound as `dg.EnvVar`: Dagster reads the variable when a run starts and the UI
shows the variable's name, never its value. A variable unset when the code location
loads is left out (Dagster would fail every run on an unset `EnvVar`), so set variables
before `synoforecast ui` / the code server starts, or reload the code location.
"""

import os
import shutil
import sys
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from synoforecast.lib.activation.email import EmailConfig, EmailError, EmailFields
from synoforecast.lib.activation.email import variable as email_variable
from synoforecast.lib.activation.metabase import MetabaseConfig, MetabaseError, MetabaseFields
from synoforecast.lib.activation.metabase import variable as metabase_variable
from synoforecast.lib.activation.notify import NotifyConfig, NotifyError
from synoforecast.lib.warehouse import connection as warehouse
from synoforecast.settings import DBT_PROJECT_DIR, WAREHOUSE_URL_VAR, Settings, configured_warehouse_url, get_settings


class WarehouseResource(dg.ConfigurableResource):
    """The PostgreSQL warehouse (SYNOFORECAST_WAREHOUSE_URL); embedded (pgserver) when unset."""

    url: str | None = None

    def get_url(self) -> str:
        # at run time, not import: the tests switch warehouses per module through the variable
        return warehouse.ready_url(self.url or configured_warehouse_url(), get_settings().pgdata_dir)

    def dbt_env(self) -> dict[str, str]:
        return warehouse.parse_url(self.get_url()).as_env()


class MetabaseResource(dg.ConfigurableResource, MetabaseFields):
    """Metabase to refresh after publishing (METABASE_*): the fields of `MetabaseFields`
    (lib/activation/metabase.py). Unset URL and credentials = not configured; half of them
    (a URL without a key, ids without a URL) fails the refresh.

    The URL and credentials are bound as `EnvVar`s (the UI shows the variable, Dagster reads
    it when a run starts); the other fields hold values already checked by `MetabaseConfig`
    when the code location loaded. A malformed variable does not stop the code location:
    it is kept in `misconfigured` and fails the refresh, naming the variable."""

    misconfigured: str | None = None

    def config(self) -> MetabaseConfig:
        """The pure client's configuration; raises MetabaseError naming a bad variable."""
        if self.misconfigured:
            raise MetabaseError(self.misconfigured)
        return MetabaseConfig(**{name: getattr(self, name) for name in MetabaseFields.model_fields})

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "MetabaseResource":
        bound = _bound({name: metabase_variable(name) for name in METABASE_SECRETS}, env)
        try:
            checked = MetabaseConfig.from_variables(env)
        except MetabaseError as exc:
            return cls(**bound, misconfigured=str(exc))
        return cls(**bound, **checked.model_dump(exclude=set(METABASE_SECRETS)))


METABASE_SECRETS = ("url", "api_key", "username", "password")  # bound as EnvVar, never stored as values
EMAIL_SECRETS = ("smtp_host", "smtp_username", "smtp_password")  # bound as EnvVar, never stored as values


class WebhooksResource(dg.ConfigurableResource, EmailFields):
    """The notification channels of summaries and alerts: Slack / Teams / n8n webhooks, email
    over SMTP (the SMTP_* fields of `EmailFields`, lib/activation/email.py), and the Dagster UI
    address their links point at (DAGSTER_WEBSERVER_URL).

    Webhook URLs, the SMTP host, user and password are bound as `EnvVar`s; the other SMTP
    fields hold values already checked by `EmailConfig` when the code location loaded. Half an
    email configuration (a host without sender or recipients, a user without password) does
    not stop the code location: it is kept in `smtp_misconfigured` and fails the notification,
    naming the variables, as a webhook URL that cannot work does."""

    slack_webhook_url: str | None = None
    teams_webhook_url: str | None = None
    n8n_webhook_url: str | None = None
    webserver_url: str = "http://127.0.0.1:3000"
    smtp_misconfigured: str | None = None

    def config(self) -> NotifyConfig:
        """Raises NotifyError when a set URL cannot work (never echoing it) or the SMTP_*
        variables are half a configuration (naming what is missing)."""
        if self.smtp_misconfigured:
            raise NotifyError(self.smtp_misconfigured)
        try:
            email = EmailConfig.from_variables({email_variable(n): getattr(self, n) for n in EmailFields.model_fields})
        except EmailError as exc:
            raise NotifyError(str(exc)) from None
        return NotifyConfig(
            **{
                name: (getattr(self, name) or "").strip() or None
                for name in ("slack_webhook_url", "teams_webhook_url", "n8n_webhook_url")
            },
            email=email if email.configured else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WebhooksResource":
        bound = _bound({**WEBHOOK_VARS, **{name: email_variable(name) for name in EMAIL_SECRETS}}, env)
        try:
            checked = EmailConfig.from_variables(env)
        except EmailError as exc:
            return cls(**bound, smtp_misconfigured=str(exc))
        return cls(**bound, **checked.model_dump(include=set(EmailFields.model_fields) - set(EMAIL_SECRETS)))

    def run_url(self, run_id: str) -> str:
        """Link to a run in the Dagster UI."""
        return f"{(self.webserver_url or 'http://127.0.0.1:3000').strip().rstrip('/')}/runs/{run_id}"


class AccuracyThresholdsResource(dg.ConfigurableResource):
    """Forecast accuracy gates (settings: max_smape, snaive_tolerance, accuracy_drop_points)."""

    max_smape: float = 30.0  # percent: a cohort's sMAPE above it fails forecast_accuracy
    snaive_tolerance: float = 0.0  # percent the sMAPE may exceed seasonal naive's
    drop_points: float = 10.0  # sMAPE points of worsening quarter on quarter that alert


WEBHOOK_VARS = {
    "slack_webhook_url": "SLACK_WEBHOOK_URL",
    "teams_webhook_url": "TEAMS_WEBHOOK_URL",
    "n8n_webhook_url": "N8N_WEBHOOK_URL",
    "webserver_url": "DAGSTER_WEBSERVER_URL",
}


def _bound(variables: Mapping[str, str], env: Mapping[str, str]) -> dict[str, dg.EnvVar]:
    """field -> EnvVar for each variable set (non-blank) in ``env``."""
    return {name: dg.EnvVar(var) for name, var in variables.items() if (env.get(var) or "").strip()}


def dbt_executable() -> str:
    """dbt from this interpreter's environment, so an un-activated venv still works."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


class DbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI without the ~4 s it spends before every invocation on what this
    project never asks for: a `dbt --version` subprocess (the dbt-core installed beside this
    interpreter, which is the executable used, answers it) and an in-process dbt adapter,
    which only `fetch_row_counts` / `fetch_column_metadata` need."""

    @cached_property
    def _cli_version(self):
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        from packaging.version import Version

        if Path(self.dbt_executable).parent == Path(sys.executable).parent:
            try:
                return Version(installed("dbt-core"))
            except PackageNotFoundError:
                pass
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):
        return None


def build_resources(env: Mapping[str, str] | None = None, settings: Settings | None = None) -> dict[str, object]:
    env = os.environ if env is None else env
    settings = settings or get_settings()
    if settings.log_format == "json":  # the code location's processes (daemon, code server, run workers)
        from synoforecast.lib.logs import configure

        configure("json")
    return {
        "warehouse": WarehouseResource(**_bound({"url": WAREHOUSE_URL_VAR}, env)),
        "dbt": DbtResource(
            project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
        ),
        "metabase": MetabaseResource.from_env(env),
        "webhooks": WebhooksResource.from_env(env),
        "accuracy": AccuracyThresholdsResource(
            max_smape=settings.max_smape,
            snaive_tolerance=settings.snaive_tolerance,
            drop_points=settings.accuracy_drop_points,
        ),
    }

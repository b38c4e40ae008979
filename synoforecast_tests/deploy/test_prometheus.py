"""Monitoring files in deploy/ (issue 29, item 2), checked by the tools that run them:
`promtool check config`, `promtool test rules` (every rule tested firing and not firing, and the
tests fail when a rule is broken), `promtool check metrics` on the endpoint's exposition,
`amtool check-config` and `amtool config routes test` on the rendered Alertmanager
configuration, hadolint on the two Dockerfiles; and the Grafana dashboard and the rules name only
metrics the endpoint exposes. promtool and amtool come from Debian's prometheus and
prometheus-alertmanager packages (.ci/run installs them): missing, a test skips locally and
fails under CI=true."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from synoforecast.lib.monitoring.metrics import (
    AccuracyFacts,
    CheckOutcome,
    DagsterFacts,
    ExportFacts,
    JobRun,
    LandingFacts,
    Limits,
    PlatformCollector,
    PublishedFacts,
    RefreshOutcome,
    SheetRows,
    StepTime,
    VolumeFacts,
    WarehouseFacts,
    dagster_families,
    volume_families,
    warehouse_families,
)
from synoforecast_tests.deploy.tools import DEPLOY, hadolint_binary
from synoforecast_tests.support.required import missing_tool

PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER = DEPLOY / "alertmanager"
DASHBOARD = DEPLOY / "grafana" / "synoforecast-dashboard.json"
RUNBOOK = DEPLOY / "RUNBOOK.md"


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        missing_tool(f"{name} not found: apt-get install {package} (Debian's package; .ci/run installs it)")
    return found


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=120, check=False, **kwargs)


def rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for r in g["rules"]]


# --------------------------------------------------------------------------- Prometheus


def test_promtool_checks_the_config_and_its_rule_file():
    result = run(tool("promtool", "prometheus"), "check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_the_config_scrapes_the_metrics_process_and_itself_and_alerts_through_alertmanager():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs["synoforecast"] == ["metrics:9109"] and jobs["prometheus"] == ["localhost:9090"]
    assert config["rule_files"] == ["rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_promtool_runs_the_rule_unit_tests():
    result = run(tool("promtool", "prometheus"), "test", "rules", PROMETHEUS / "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_tested_firing_and_not_firing():
    tests = yaml.safe_load((PROMETHEUS / "rules.test.yml").read_text())["tests"]
    cases = [case for t in tests for case in t["alert_rule_test"]]
    for rule in rules():
        mine = [c for c in cases if c["alertname"] == rule["alert"]]
        assert [c for c in mine if c["exp_alerts"]], f"{rule['alert']}: no test where it fires"
        assert [c for c in mine if not c["exp_alerts"]], f"{rule['alert']}: no test where it does not fire"
    assert {c["alertname"] for c in cases} == {r["alert"] for r in rules()}


def test_the_rule_tests_fail_when_a_rule_is_broken(tmp_path):
    """Each rule in turn made one that never fires: `promtool test rules` must then fail."""
    promtool = tool("promtool", "prometheus")
    shutil.copy(PROMETHEUS / "rules.test.yml", tmp_path / "rules.test.yml")
    source = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    for index, rule in enumerate(rules()):
        broken = json.loads(json.dumps(source))
        broken["groups"][0]["rules"][index]["expr"] = "vector(1) == 0"
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(broken))
        result = run(promtool, "test", "rules", tmp_path / "rules.test.yml")
        assert result.returncode != 0, f"{rule['alert']} broken, yet its tests pass"
        assert rule["alert"] in result.stdout + result.stderr


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_rule_has_a_severity_a_summary_and_a_runbook_entry_that_exists():
    anchors = {_slug(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if re.match(r"^#{1,6} ", line)}
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        page, anchor = notes["runbook_url"].split("#")
        assert page == "deploy/RUNBOOK.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading #{anchor} in deploy/RUNBOOK.md"


def test_the_no_export_rule_follows_the_platforms_freshness_setting():
    """The rule compares with synoforecast_export_max_age_seconds, the setting's value (default 8 days)."""
    from synoforecast.settings import Settings

    (rule,) = [r for r in rules() if r["alert"] == "SynoforecastNoExport"]
    assert rule["expr"] == "synoforecast_export_age_seconds >= synoforecast_export_max_age_seconds"
    assert Settings.model_fields["freshness_max_age_days"].default == 8
    assert Limits().freshness_max_age_days == 8


# --------------------------------------------------------------------------- the names the endpoint exposes


def full_exposition() -> str:
    """One scrape's text with every family populated (lib/monitoring/metrics.py, from given facts)."""
    now = dt.datetime(2026, 8, 30, tzinfo=dt.UTC)
    warehouse = WarehouseFacts(
        now,
        ExportFacts("a" * 64, "x.xlsx", now - dt.timedelta(days=3), (SheetRows("SVR-RM", 10, 11, 1),)),
        PublishedFacts("a" * 64, now, now - dt.timedelta(days=3)),
        (AccuracyFacts("svr_rm_overall", "units", "total", "2026-Q2", 12.0, 1, "2026-Q1", 10.0),),
        (LandingFacts("svr_rm_overall", "total", "revenue", "2026-Q3", now.date(), 0.6, 5.0, 10.0, 11.0),),
    )
    dagster = DagsterFacts(
        86400,
        {("forecast_pipeline_job", "SUCCESS"): 1},
        {("landing_job", "STARTED"): 1},
        (JobRun("forecast_pipeline_job", "SUCCESS", "r", 10.0, 5.0),),
        (StepTime("forecast_pipeline_job", "s", "SUCCESS", 1.0),),
        (CheckOutcome("raw/svr_rm", "svr_rm_contract", "ERROR", True, 1, 0, 5.0),),
        (RefreshOutcome("activation/metabase_refresh", "refreshed", True, 5.0, "r"),),
    )
    sources = [
        ("warehouse", lambda: warehouse_families(warehouse)),
        ("dagster", lambda: dagster_families(dagster)),
        ("volume", lambda: volume_families([VolumeFacts("/data", 100, 50)])),
    ]
    registry = CollectorRegistry()
    registry.register(PlatformCollector(sources, Limits(), "1.0"))
    return generate_latest(registry).decode()


def exposed_names() -> set[str]:
    names = set()
    for family in text_string_to_metric_families(full_exposition()):
        names.add(family.name)
        names |= {s.name for s in family.samples}
    return names


def test_promtool_finds_nothing_to_say_about_the_metric_names():
    result = run(tool("promtool", "prometheus"), "check", "metrics", input=full_exposition())
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bsynoforecast_[a-z0-9_]+", expr))


def test_the_rules_name_only_metrics_the_endpoint_exposes():
    exposed = exposed_names()
    named = set().union(*(_metric_names(r["expr"]) for r in rules()))
    assert named and named <= exposed, named - exposed


# --------------------------------------------------------------------------- Grafana


def dashboard_panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_every_dashboard_query_names_a_metric_the_endpoint_exposes():
    """Grafana cannot be installed here: the dashboard is checked as data. Every panel queries
    the Prometheus data source chosen at import, and every metric it names is exposed."""
    exposed = exposed_names() | {"up"}
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = dashboard_panels()
    assert len(panels) >= 15
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            names = _metric_names(target["expr"]) | ({"up"} if re.search(r"\bup\{", target["expr"]) else set())
            assert names, f"{panel['title']}: {target['expr']} names no metric"
            assert names <= exposed, f"{panel['title']}: {sorted(names - exposed)} not exposed"


def test_the_dashboard_covers_every_metric_family_on_call_needs():
    queried = set().union(*(_metric_names(t["expr"]) for p in dashboard_panels() for t in p["targets"]))
    for needed in (
        "synoforecast_export_age_seconds",
        "synoforecast_published_export_age_seconds",
        "synoforecast_runs_recent",
        "synoforecast_step_duration_seconds",
        "synoforecast_check_evaluations",
        "synoforecast_export_rows_loaded",
        "synoforecast_forecast_smape",
        "synoforecast_landing_vs_forecast_ratio",
        "synoforecast_metabase_refresh_success",
        "synoforecast_scrape_source_up",
        "synoforecast_volume_free_bytes",
    ):
        assert needed in queried, needed


# --------------------------------------------------------------------------- Alertmanager

ENV = {
    "ALERTMANAGER_WEBHOOK_URL": "http://n8n:5678/webhook/synoforecast-alerts",
    "SMTP_HOST": "smtp.example.org",
    "SMTP_FROM": "synoforecast <alerts@example.org>",
    "SMTP_TO": "oncall@example.org, data-lead@example.org",
    "SMTP_USERNAME": "alerts@example.org",
    "SMTP_PASSWORD": "s3cret-smtp",
}


def render(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    values = {k: v for k, v in {**ENV, **env}.items() if v is not None}
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "ALERTMANAGER_"))}
    return run(
        ALERTMANAGER / "render-config.sh",
        "render",
        ALERTMANAGER / "alertmanager.yml",
        tmp_path / "alertmanager.yml",
        env={**keep, **values},
    )


def test_the_rendered_config_passes_amtool_and_keeps_the_password_out(tmp_path):
    amtool = tool("amtool", "prometheus-alertmanager")
    result = render(tmp_path)
    assert result.returncode == 0, result.stderr
    rendered = (tmp_path / "alertmanager.yml").read_text()
    check = run(amtool, "check-config", tmp_path / "alertmanager.yml")
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    assert "s3cret-smtp" not in rendered
    assert not [line for line in rendered.splitlines() if "${" in line.split("#")[0]]  # every placeholder filled
    config = yaml.safe_load(rendered)
    assert config["global"]["smtp_smarthost"] == "smtp.example.org:587"
    assert config["global"]["smtp_require_tls"] is True
    password = Path(config["global"]["smtp_auth_password_file"])
    assert password.read_text() == "s3cret-smtp"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    (email,) = [r for r in config["receivers"] if r["name"] == "chat-and-email"][0]["email_configs"]
    assert email["to"] == "oncall@example.org, data-lead@example.org"


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=SynoforecastPostgresDown", "severity=critical"], "chat-and-email"),
        (["alertname=SynoforecastBlockingCheckFailed", "severity=critical"], "chat-and-email"),
        (["alertname=SynoforecastNoExport", "severity=warning"], "chat-and-email"),
        (["alertname=SynoforecastRunFailed", "severity=warning"], "chat"),
        (["alertname=SynoforecastAccuracyDrop", "severity=warning"], "chat"),
    ],
)
def test_amtool_routes_critical_and_freshness_alerts_to_chat_and_email_the_rest_to_chat(tmp_path, labels, receiver):
    amtool = tool("amtool", "prometheus-alertmanager")
    assert render(tmp_path).returncode == 0
    result = run(amtool, "config", "routes", "test", f"--config.file={tmp_path / 'alertmanager.yml'}", *labels)
    assert result.returncode == 0 and result.stdout.strip() == receiver, result.stdout + result.stderr


def test_every_alert_severity_is_routed(tmp_path):
    assert render(tmp_path).returncode == 0
    routed = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())["route"]["routes"]
    assert {'severity="critical"'} <= {m for r in routed for m in r["matchers"]}
    assert {r["labels"]["severity"] for r in rules()} == {"critical", "warning"}  # warning: the default route


def test_a_relay_without_auth_renders_without_credentials(tmp_path):
    amtool = tool("amtool", "prometheus-alertmanager")
    result = render(tmp_path, SMTP_USERNAME=None, SMTP_PASSWORD=None, SMTP_STARTTLS="false", SMTP_PORT="25")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    assert config["global"]["smtp_auth_username"] == "" and config["global"]["smtp_auth_password_file"] == ""
    assert config["global"]["smtp_smarthost"] == "smtp.example.org:25" and config["global"]["smtp_require_tls"] is False
    assert run(amtool, "check-config", tmp_path / "alertmanager.yml").returncode == 0


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SMTP_HOST": None}, "SMTP_HOST is not set"),
        ({"ALERTMANAGER_WEBHOOK_URL": None}, "ALERTMANAGER_WEBHOOK_URL is not set"),
        ({"SMTP_PASSWORD": None}, "SMTP_USERNAME and SMTP_PASSWORD (or SMTP_PASSWORD_FILE) must be set together"),
        ({"SMTP_STARTTLS": "yes"}, "SMTP_STARTTLS must be true or false"),
        ({"SMTP_TO": "a@example.org' , b"}, "SMTP_TO must not hold a quote"),
    ],
)
def test_a_half_or_broken_configuration_is_refused_with_the_variable_named(tmp_path, env, says):
    result = render(tmp_path, **env)
    assert result.returncode != 0
    assert says in result.stderr and "s3cret-smtp" not in result.stderr
    assert not (tmp_path / "alertmanager.yml").exists()


def test_amtool_is_not_a_no_op(tmp_path):
    amtool = tool("amtool", "prometheus-alertmanager")
    assert render(tmp_path).returncode == 0
    text = (tmp_path / "alertmanager.yml").read_text().replace("receiver: chat-and-email", "receiver: nobody", 1)
    (tmp_path / "broken.yml").write_text(text)
    result = run(amtool, "check-config", tmp_path / "broken.yml")
    assert result.returncode != 0 and "nobody" in result.stdout + result.stderr


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("dockerfile", ["base/prometheus.Dockerfile", "base/alertmanager.Dockerfile"])
def test_hadolint_passes_the_monitoring_dockerfiles(dockerfile):
    result = run(hadolint_binary(), "--no-color", "--failure-threshold", "info", DEPLOY / dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dockerfile", "package", "copied"),
    [
        ("base/prometheus.Dockerfile", "prometheus", ["prometheus.yml", "rules.yml"]),
        ("base/alertmanager.Dockerfile", "prometheus-alertmanager", ["alertmanager.yml", "render-config.sh"]),
    ],
)
def test_the_images_are_debians_packages_on_the_local_base_run_as_a_user(dockerfile, package, copied):
    """Built like base/postgres.Dockerfile: FROM the debootstrapped local/debian:bookworm (no
    Docker Hub), the package from Debian's mirror, a fixed non-root uid, a health check."""
    text = (DEPLOY / dockerfile).read_text()
    postgres = (DEPLOY / "base" / "postgres.Dockerfile").read_text()
    base = "ARG DEBIAN_IMAGE=local/debian:bookworm\nFROM ${DEBIAN_IMAGE}"
    assert base in text and base in postgres
    assert re.search(rf"apt-get install -y --no-install-recommends\s+(\\\n\s+)?{package}\b", text)
    assert re.search(r"^USER 990:990$", text, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK\s", text, flags=re.MULTILINE)
    context = DEPLOY / ("prometheus" if "prometheus.Dockerfile" in dockerfile else "alertmanager")
    for name in copied:
        assert name in text and (context / name).exists()
    assert f"deploy/base/{Path(dockerfile).name}" in text and f"deploy/{context.name}" in text  # the build command

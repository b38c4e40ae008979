"""Freshness (design §3 "silence is an event"): asset checks on the snapshot and on the
quarterly forecasts, evaluated every few minutes by `freshness_sensor`, which posts each
breach once to the configured channels (Slack / Teams / n8n webhooks, email).

* `workbook_snapshot:snapshot_freshness`: the newest accepted export is dated
  `freshness_max_age_days` (8) or more before now.
* `forecast/<cohort>:quarter_close_freshness`: `quarter_close_grace_days` (10) after a
  quarter ended, that quarter's forecast (partition Q = as of Q) is not in
  `published.forecasts`.

Why not Dagster's built-ins (checked in the installed 1.13): `FreshnessPolicy` and the
superseded `build_last_update_freshness_checks` / `build_time_partition_freshness_checks`
judge an asset by its materialisation events. A re-run or re-publish of an old export
materialises `workbook_snapshot` without any new export; a forecast partition is
materialised before `published` is switched (and stays so when the run then fails); a
grace in days is no cron deadline for fiscal quarters; and the built-in sensor launches a
run per evaluation and posts nothing. These checks read what is true for the analyst:
the export dates in ops.snapshots and the quarters in `published.forecasts`
(lib/monitoring/freshness.py, pure, and lib/monitoring/freshness_state.py).

The sensor reports its evaluations as Dagster asset check evaluations (runless, only when
an outcome or its description changes: a few per day at most), so the checks show failed
in the UI even though nothing materialises while exports stop coming. Executing a check
from the UI, or the snapshot run's own evaluation, gives the same answer. The alert state
lives in the warehouse (ops.freshness_alerts): a breach is posted once per channel, again
only after it resolved and recurred; a channel that failed is retried at the next tick,
which fails and names it, as `notify_on_run_failure` does.
"""

import datetime as dt

import dagster as dg
from dagster._time import get_current_datetime  # Dagster's clock, as its own freshness checks read it

from synoforecast.defs.resources import WarehouseResource, WebhooksResource
from synoforecast.defs.runs import SNAPSHOT_KEY, platform_sensor
from synoforecast.lib.activation.notify import AlertNotDelivered, NotifyError, send_alert
from synoforecast.lib.forecasting.cohorts import COHORTS
from synoforecast.lib.monitoring import freshness
from synoforecast.lib.monitoring.freshness import BREACH, QUARTER_CLOSE, SNAPSHOT, UNKNOWN, Finding
from synoforecast.settings import effective_partitions_start, get_settings

SNAPSHOT_CHECK = "snapshot_freshness"
QUARTER_CHECK = "quarter_close_freshness"
SENSOR_INTERVAL_S = 300


def evaluate(url: str, now: dt.datetime) -> dict[str, Finding]:
    """Both rules at `now` on what the warehouse holds."""
    from synoforecast.lib.monitoring.freshness_state import evaluate as evaluate_warehouse

    settings = get_settings()
    return evaluate_warehouse(
        url,
        now,
        max_age_days=settings.freshness_max_age_days,
        grace_days=settings.quarter_close_grace_days,
        fiscal_start_month=settings.fiscal_year_start_month,
        partitions_start=effective_partitions_start(settings),
    )


def _metadata(finding: Finding) -> dict[str, object]:
    meta: dict[str, object] = {"rule": finding.rule, "status": finding.status}
    for key, value in finding.metadata.items():
        meta[key] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
    if finding.fix:
        meta["fix"] = finding.fix
    return meta


def evaluation(
    finding: Finding, asset_key: dg.AssetKey, check_name: str, subject: str | None = None
) -> dg.AssetCheckEvaluation:
    """The check's outcome for one asset: a breach fails with ERROR severity, a rule that
    cannot be judged yet (no export, nothing published) fails with WARN."""
    passed, description = (
        finding.subjects.get(subject, (finding.passed, finding.summary))
        if subject
        else (finding.passed, finding.summary)
    )
    severity = dg.AssetCheckSeverity.WARN if finding.status == UNKNOWN else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=check_name,
        passed=passed,
        description=description,
        severity=severity,
        metadata=_metadata(finding),
    )


def evaluations(findings: dict[str, Finding]) -> list[dg.AssetCheckEvaluation]:
    out = [evaluation(findings[SNAPSHOT], SNAPSHOT_KEY, SNAPSHOT_CHECK)]
    out += [
        evaluation(findings[QUARTER_CLOSE], dg.AssetKey(["forecast", c.name]), QUARTER_CHECK, c.name) for c in COHORTS
    ]
    return out


def _result(ev: dg.AssetCheckEvaluation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=ev.asset_key,
        check_name=ev.check_name,
        passed=ev.passed,
        severity=ev.severity,
        description=ev.description,
        metadata=ev.metadata,
    )


@dg.asset_check(
    asset=SNAPSHOT_KEY,
    name=SNAPSHOT_CHECK,
    blocking=False,
    description="The newest accepted export is dated less than SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS "
    "(default 8) days ago. Evaluated by freshness_sensor, which posts a breach once.",
)
def snapshot_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    findings = evaluate(warehouse.get_url(), get_current_datetime())
    return _result(evaluations(findings)[0])


@dg.multi_asset_check(
    name=QUARTER_CHECK,
    specs=[
        dg.AssetCheckSpec(
            QUARTER_CHECK,
            asset=dg.AssetKey(["forecast", c.name]),
            blocking=False,
            description="SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS (default 10) after a quarter ended, "
            "this cohort's forecast as of that quarter is in published.forecasts. "
            "Evaluated by freshness_sensor, which posts a breach once.",
        )
        for c in COHORTS
    ],
    can_subset=True,
)
def quarter_close_freshness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    findings = evaluate(warehouse.get_url(), get_current_datetime())
    wanted = set(context.selected_asset_check_keys)
    for ev in evaluations(findings)[1:]:
        if dg.AssetCheckKey(ev.asset_key, ev.check_name) in wanted:
            yield _result(ev)


freshness_checks = [snapshot_freshness, quarter_close_freshness]


def report_changes(instance: dg.DagsterInstance, findings: dict[str, Finding]) -> list[str]:
    """Record each check's evaluation when it differs from the latest one recorded (outcome,
    severity or description): the UI shows the current state without an event per tick."""
    evs = evaluations(findings)
    keys = [dg.AssetCheckKey(ev.asset_key, ev.check_name) for ev in evs]
    summaries = instance.event_log_storage.get_asset_check_summary_records(keys)
    reported = []
    for key, ev in zip(keys, evs):
        record = summaries[key].last_completed_check_execution_record if key in summaries else None
        last = record.event.asset_check_evaluation if record is not None and record.event is not None else None
        if last is not None and (last.passed, last.severity, last.description) == (
            ev.passed,
            ev.severity,
            ev.description,
        ):
            continue
        instance.report_runless_asset_event(ev)
        reported.append(key.to_user_string())
    return reported


def _link(webhooks: WebhooksResource, finding: Finding) -> str:
    base = (webhooks.webserver_url or "http://127.0.0.1:3000").strip().rstrip("/")
    if finding.rule == SNAPSHOT:
        key = SNAPSHOT_KEY
    else:
        missing = finding.metadata.get("missing_cohorts") or [COHORTS[0].name]
        key = dg.AssetKey(["forecast", missing[0]])
    return f"{base}/assets/{'/'.join(key.path)}?view=checks"


def post_breaches(
    url: str, findings: dict[str, Finding], webhooks: WebhooksResource, now: dt.datetime
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Post every breach to the channels it has not reached yet; record what reached where.
    Returns (rule -> channels posted now, rule -> why a channel was not reached)."""
    from synoforecast.lib.monitoring.freshness_state import load_alerts, save_alerts

    state = load_alerts(url)
    delivered: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    try:
        config = webhooks.config()
    except NotifyError as exc:
        config = None
        errors = {rule: str(exc) for rule, f in findings.items() if f.status == BREACH}
    channels = config.channels() if config is not None else []
    for finding, todo in freshness.alerts_due(findings.values(), state, channels):
        outcome = send_alert(
            f"synoforecast: {finding.title}",
            freshness.alert_details(finding, _link(webhooks, finding)),
            config.only(todo),
            event=f"freshness_{finding.rule}",
            extra={"rule": finding.rule, "breach": finding.breach, "fix": finding.fix, "facts": dict(finding.metadata)},
        )
        delivered[finding.rule] = [c for c, result in outcome.items() if result == "sent"]
        failed = {c: result for c, result in outcome.items() if result != "sent"}
        if failed:
            errors[finding.rule] = "; ".join(f"{c}: {result}" for c, result in failed.items())
    new = freshness.next_state(findings.values(), state, now, delivered, errors)
    changed = {rule: s for rule, s in new.items() if s != state.get(rule)}
    if changed:
        save_alerts(url, changed, {rule: f.summary for rule, f in findings.items()})
    return delivered, errors


@platform_sensor(
    "freshness_sensor",
    SENSOR_INTERVAL_S,
    "Evaluates snapshot_freshness and quarter_close_freshness (no export for "
    "SYNOFORECAST_FRESHNESS_MAX_AGE_DAYS; a closed quarter without a published forecast "
    "SYNOFORECAST_QUARTER_CLOSE_GRACE_DAYS after it ended) and posts each breach once to the "
    "SLACK/TEAMS/N8N webhooks and the SMTP email recipients. Launches no run.",
)
def freshness_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, webhooks: WebhooksResource
) -> dg.SkipReason:
    now = get_current_datetime()
    url = warehouse.get_url()
    findings = evaluate(url, now)
    reported = report_changes(context.instance, findings)
    if reported:
        context.log.info(f"check evaluations recorded: {', '.join(reported)}")
    delivered, errors = post_breaches(url, findings, webhooks, now)
    for rule, channels in delivered.items():
        if channels:
            context.log.info(f"{rule} breach posted to {', '.join(channels)}: {findings[rule].headline}")
    if errors:
        context.log.error(f"freshness alert NOT delivered: {errors}")
        raise AlertNotDelivered(
            "freshness alert not posted (retried at the next tick): "
            + "; ".join(f"{rule}: {why}" for rule, why in errors.items())
        )
    return dg.SkipReason("; ".join(f"{rule}: {f.status} ({f.headline})" for rule, f in findings.items()))


defs = dg.Definitions(asset_checks=freshness_checks, sensors=[freshness_sensor])

"""Run-failure alerts: every failed run of this code location is posted to the
configured channels (Slack / Teams / n8n webhooks, email) with a link to the run in the
Dagster UI."""

from __future__ import annotations

import dagster as dg

from synoforecast.defs.resources import WebhooksResource
from synoforecast.lib.activation.notify import AlertNotDelivered, NotifyError, send_alert

MAX_DETAIL_CHARS = 400


def _failure_details(context: dg.RunFailureSensorContext) -> list[str]:
    details = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # the user's error, not Dagster's wrapper
            error = error.cause
        message = " ".join(((error.message if error else None) or event.message or "failed").split())
        details.append(f"step {event.step_key}: {message[:MAX_DETAIL_CHARS]}")
    if not details:
        message = " ".join((context.failure_event.message or "run failed").split())
        details.append(message[:MAX_DETAIL_CHARS])
    return details


@dg.run_failure_sensor(
    name="notify_on_run_failure",
    description="Posts every failed run (with a link to it) to the SLACK/TEAMS/N8N webhooks and the SMTP "
    "email recipients that are configured.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def notify_on_run_failure(context: dg.RunFailureSensorContext, webhooks: WebhooksResource) -> None:
    try:
        config = webhooks.config()
    except NotifyError as exc:
        raise AlertNotDelivered(f"run failure not posted: {exc}") from None
    if not config.channels():
        context.log.info("no channel configured (SLACK/TEAMS/N8N_WEBHOOK_URL, SMTP_HOST): run failure not posted")
        return
    run = context.dagster_run
    link = webhooks.run_url(run.run_id)
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags.get('dagster/asset_partition_range_start')}…{run.tags.get('dagster/asset_partition_range_end')}"
        if run.tags.get("dagster/asset_partition_range_start")
        else None
    )
    outcome = send_alert(
        f"synoforecast run failed: {run.job_name}",
        _failure_details(context),
        config,
        event="run_failure",
        run_url=link,
        extra={"run_id": run.run_id, "job": run.job_name, "partition": partition},
    )
    failed = {k: v for k, v in outcome.items() if v != "sent"}
    if failed:  # Dagster records the tick as failed with this message; the cursor still moves on
        context.log.error(f"run failure of {run.run_id} NOT posted to {', '.join(failed)}: {failed}")
        raise AlertNotDelivered(
            f"run failure of {run.run_id} not posted to {', '.join(failed)}: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())
        )
    context.log.info(f"run failure of {run.run_id} posted to {', '.join(outcome)}")

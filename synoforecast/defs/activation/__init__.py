"""Activation domain: Metabase refresh, summary notifications and run-failure alerts."""

import dagster as dg

from synoforecast.defs.activation.assets import metabase_provisioning, metabase_refresh, summary_notification
from synoforecast.defs.activation.landing import landing_metabase_refresh, landing_summary
from synoforecast.defs.activation.sensors import notify_on_run_failure

defs = dg.Definitions(
    assets=[metabase_provisioning, metabase_refresh, summary_notification, landing_metabase_refresh, landing_summary],
    sensors=[notify_on_run_failure],
)

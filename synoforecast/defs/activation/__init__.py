"""Activation domain: Metabase refresh, summary notifications and run-failure alerts."""

import dagster as dg

from synoforecast.defs.activation.assets import metabase_refresh, summary_notification
from synoforecast.defs.activation.sensors import notify_on_run_failure

defs = dg.Definitions(assets=[metabase_refresh, summary_notification], sensors=[notify_on_run_failure])

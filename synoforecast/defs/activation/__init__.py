"""Activation domain: Metabase refresh and summary notifications."""

import dagster as dg

from synoforecast.defs.activation.assets import metabase_refresh, summary_notification

defs = dg.Definitions(assets=[metabase_refresh, summary_notification])

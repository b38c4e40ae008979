"""Landing domain: the quarter in progress (raw_running), forecast/landing, its gate, job and sensor."""

import dagster as dg

from synoforecast.defs.landing.assets import landing, quarter_in_progress_rows
from synoforecast.defs.landing.checks import landing_published
from synoforecast.defs.landing.sensors import landing_job, landing_sensor

defs = dg.Definitions(
    assets=[quarter_in_progress_rows, landing],
    asset_checks=[landing_published],
    jobs=[landing_job],
    sensors=[landing_sensor],
)

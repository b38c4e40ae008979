"""Transform domain: dbt staging and marts."""

import dagster as dg

from synoforecast.defs.transform.assets import synoforecast_dbt_assets

defs = dg.Definitions(assets=[synoforecast_dbt_assets])

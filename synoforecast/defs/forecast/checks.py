"""The one-SVR-RM-total gate: tiers, customers and regions publish the same SVR-RM total."""

import dagster as dg

from synoforecast.defs.checks import per_partition
from synoforecast.defs.forecast.assets import forecast_key
from synoforecast.defs.partitions import partition_quarters, quarterly_partitions
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.forecasting import one_total
from synoforecast.lib.forecasting.cohorts import COHORTS_BY_NAME
from synoforecast.lib.quarters import to_key


@dg.asset_check(
    asset=forecast_key(COHORTS_BY_NAME[one_total.CUSTOMERS]),
    additional_deps=[forecast_key(COHORTS_BY_NAME[one_total.REGIONS])],
    name="svr_rm_one_total",
    blocking=True,
    partitions_def=quarterly_partitions,
    description="The SVR-RM total is one number: per quarter, the actual of the total, tier, customer "
    "and region marts, and the forecast of svr_rm_overall, svr_rm_top_customers (its total and the "
    "sum of its customers) and regional (the sum of its regions) are equal.",
)
def svr_rm_one_total(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
    quarters = partition_quarters(context)
    url = warehouse.get_url()
    actual = one_total.actual_disagreements(url, quarters[0], quarters[-1])
    forecast = one_total.forecast_disagreements(url, quarters[0], quarters[-1])
    results = {}
    for q in quarters:
        problems = actual.get(q, []) + forecast.get(q, [])
        results[to_key(q)] = dg.AssetCheckResult(
            passed=not problems,
            description="; ".join(problems)[:2000] if problems else "one SVR-RM total in actuals and forecasts",
            metadata={"problems": dg.MetadataValue.json(problems)},
        )
    yield from per_partition(context, results)

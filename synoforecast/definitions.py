"""The one Definitions object: each domain's definitions merged, plus shared resources."""

import dagster as dg

from synoforecast.defs import activation, forecast, freshness, housekeeping, ingestion, landing, pipeline, transform
from synoforecast.defs.resources import build_resources

defs = dg.Definitions.merge(
    ingestion.defs,
    transform.defs,
    forecast.defs,
    landing.defs,
    activation.defs,
    pipeline.defs,
    housekeeping.build_defs(lambda: defs.resolve_asset_graph()),  # the graph it prunes for: this one
    freshness.defs,
    dg.Definitions(resources=build_resources()),
)

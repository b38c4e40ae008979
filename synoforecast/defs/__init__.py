"""Dagster definitions, one package per domain; `synoforecast.definitions` merges them."""

import warnings

import dagster as dg

# Single-run backfills and partitioned asset checks are the design's choice (design §1);
# their beta/preview notices would otherwise print in every process that loads the code.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

"""The quarter-close schedule waits for an export that holds the closed quarter (real Postgres)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import psycopg

from synoforecast.defs.pipeline import quarter_close_schedule
from synoforecast.defs.resources import WarehouseResource
from synoforecast.lib.warehouse.connection import ensure_schema


def accept(url: str, folder, sha: str, complete: list[str], seen: str) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"sha256": sha, "file": f"/inbox/{sha}.xlsx", "complete_quarter_keys": complete})
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status, parquet_dir, last_seen_at)
                        values (%s, %s, 1, now(), 'accepted', %s, %s)""",
            (sha, f"/inbox/{sha}.xlsx", str(folder), seen),
        )


def tick(url: str, when: dt.datetime):
    context = dg.build_schedule_context(
        scheduled_execution_time=when, resources={"warehouse": WarehouseResource(url=url)}
    )
    return quarter_close_schedule(context)


def test_quarter_close_waits_for_an_export_that_holds_the_quarter(pg_url, tmp_path):
    ensure_schema(pg_url)
    day2 = dt.datetime(2025, 10, 2, 6, tzinfo=dt.UTC)  # 2025-Q3 has just closed
    assert "no accepted snapshot" in tick(pg_url, day2).skip_message
    # the last weekly export of the quarter (taken 29 Sep) holds 2025-Q2 completely, not Q3
    accept(pg_url, tmp_path / "a", "a" * 64, ["2025-01-01", "2025-04-01"], "2025-09-29")
    skipped = tick(pg_url, day2)
    assert isinstance(skipped, dg.SkipReason)
    assert "waiting for the export" in skipped.skip_message and "up to 2025-Q2, not 2025-Q3" in skipped.skip_message
    # the first October export holds Q3: the next daily tick runs it, once per quarter (run_key)
    accept(pg_url, tmp_path / "b", "b" * 64, ["2025-01-01", "2025-04-01", "2025-07-01"], "2025-10-06")
    request = tick(pg_url, dt.datetime(2025, 10, 7, 6, tzinfo=dt.UTC))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2025-07-01" and request.run_key == "quarter-close-2025-07-01"
    assert request.tags["synoforecast/snapshot"] == "b" * 64


def test_a_forecast_partition_the_snapshot_does_not_hold_fails_and_publishes_nothing(pg_url, tmp_path):
    from synoforecast.defs.forecast.assets import forecast_assets
    from synoforecast_tests.conftest import fetch

    ensure_schema(pg_url)
    accept(pg_url, tmp_path / "a", "a" * 64, ["2025-01-01", "2025-04-01"], "2025-09-29")
    overall = next(a for a in forecast_assets if a.key.path[-1] == "svr_rm_overall")
    result = dg.materialize(
        [overall],
        partition_key="2025-07-01",
        raise_on_error=False,
        resources={"warehouse": WarehouseResource(url=pg_url)},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert "forecast/svr_rm_overall" in message and "holds complete quarters up to 2025-Q2, not 2025-Q3" in message
    assert fetch(pg_url, "select count(*) from forecast.forecasts")[0][0] == 0

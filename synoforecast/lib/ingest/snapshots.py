"""Accepted snapshots on disk (one parquet per sheet + manifest.json) and in `ops.snapshots`.

The parquet copy is what the per-quarter sheet assets load, so a backfill of one
quarter never re-reads the Excel file; the manifest is the audit record.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from synoforecast.lib.files import atomic_path
from synoforecast.lib.ingest import export_order, restatements
from synoforecast.lib.ingest.export_order import ExportDates
from synoforecast.lib.ingest.workbook import WorkbookRead
from synoforecast.lib.quarters import quarter_label
from synoforecast.lib.warehouse.connection import connect, copy_frame, partition_lock

MANIFEST = "manifest.json"


def write_snapshot(read: WorkbookRead, root: Path, extra: dict | None = None) -> dict:
    """Persist the parsed sheets and return the manifest (also written as manifest.json).
    Each file is replaced in one rename: a run of the same export reading them meanwhile
    sees whole files."""
    folder = root / read.sha256
    for sheet in read.sheets.values():
        with atomic_path(folder / f"{sheet.spec.table}.parquet") as partial:
            sheet.frame.write_parquet(partial)
        if sheet.rows_quarantined:
            with atomic_path(folder / f"{sheet.spec.table}.quarantine.parquet") as partial:
                sheet.quarantine.write_parquet(partial)
    manifest = {
        **read.report(),
        "size_bytes": read.size_bytes,
        "file_mtime": read.mtime.isoformat(),
        "read_seconds": read.read_seconds,
        "quarters": [q.isoformat() for q in read.quarters],
        "complete_quarter_keys": [q.isoformat() for q in read.complete_quarters],
        "quarter_hashes": read.quarter_hashes,
        "parquet_dir": str(folder),
        "tables": {s.spec.table: s.spec.name for s in read.sheets.values()},
        **(extra or {}),
    }
    with atomic_path(folder / MANIFEST) as partial:
        partial.write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def quarantined_rows(read: WorkbookRead) -> pl.DataFrame:
    frames = [
        sheet.quarantine.with_columns(sheet=pl.lit(name))
        for name, sheet in read.sheets.items()
        if sheet.rows_quarantined
    ]
    return pl.concat(frames) if frames else pl.DataFrame()


def load_manifest(parquet_dir: str | Path) -> dict:
    return json.loads((Path(parquet_dir) / MANIFEST).read_text())


def load_table(parquet_dir: str | Path, table: str) -> pl.DataFrame | None:
    path = Path(parquet_dir) / f"{table}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def record_accepted(
    url: str, manifest: dict, run_id: str, quarantined: pl.DataFrame | None = None, republished_over: str | None = None
) -> int:
    """Upsert the manifest into ops.snapshots and replace its quarantined rows, atomically. A re-ingest
    of the same bytes refreshes every column read from the file (its name, mtime and so its complete
    quarters, the per-sheet counts under today's settings): the row describes the latest reading.
    Returns the snapshot's compact id (kept by every later upsert: one id per sha256).
    `republished_over`: the newer published export an operator rolled back from (--republish);
    the row keeps that it was re-published, and when, through later re-ingests."""
    sheets = manifest["sheets"]
    with connect(url) as conn, conn.transaction():
        # two runs of the same export (the sensor's and a CLI ingest) take turns: one row set
        partition_lock(conn, "ops.quarantine", manifest["sha256"])
        conn.execute("delete from ops.quarantine where snapshot_sha256 = %s", (manifest["sha256"],))
        if quarantined is not None and quarantined.height:
            copy_frame(
                conn,
                "ops.quarantine",
                quarantined.select(
                    pl.lit(manifest["sha256"]).alias("snapshot_sha256"), "sheet", "source_row", "cell", "reason"
                ),
            )
        return conn.execute(
            """insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status, sheets, ignored_sheets,
                   quarters, complete_quarters, quarter_hashes, parquet_dir, first_run_id, last_run_id, read_seconds,
                   changed_quarters, baseline_sha256, fingerprints, republished, republished_at, republished_over)
               values (%s, %s, %s, %s, 'accepted', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                       %s, case when %s then now() end, %s)
               on conflict (sha256) do update set file = excluded.file, status = 'accepted', error = null,
                   size_bytes = excluded.size_bytes, file_mtime = excluded.file_mtime, sheets = excluded.sheets,
                   ignored_sheets = excluded.ignored_sheets, quarters = excluded.quarters,
                   complete_quarters = excluded.complete_quarters, quarter_hashes = excluded.quarter_hashes,
                   parquet_dir = excluded.parquet_dir, last_run_id = excluded.last_run_id,
                   read_seconds = excluded.read_seconds, changed_quarters = excluded.changed_quarters,
                   baseline_sha256 = excluded.baseline_sha256, fingerprints = excluded.fingerprints,
                   republished = ops.snapshots.republished or excluded.republished,
                   republished_at = coalesce(excluded.republished_at, ops.snapshots.republished_at),
                   republished_over = coalesce(excluded.republished_over, ops.snapshots.republished_over),
                   last_seen_at = now()
               returning snapshot_id""",
            (
                manifest["sha256"],
                manifest["file"],
                manifest["size_bytes"],
                manifest["file_mtime"],
                json.dumps(sheets),
                json.dumps(manifest["ignored_sheets"]),
                json.dumps(manifest["quarters"]),
                json.dumps(manifest["complete_quarter_keys"]),
                json.dumps(manifest["quarter_hashes"]),
                manifest["parquet_dir"],
                run_id,
                run_id,
                manifest["read_seconds"],
                json.dumps(manifest.get("changed_quarter_keys", [])),
                manifest.get("baseline_sha256"),
                json.dumps(manifest.get("expected_fingerprints", {})),
                republished_over is not None,
                republished_over is not None,
                republished_over,
            ),
        ).fetchone()[0]


def record_refused(url: str, file: Path, sha256: str, error: str, run_id: str) -> None:
    """A refusal of content never accepted is a 'refused' row. Content accepted before (an
    older export dropped again) keeps its 'accepted' row and its place in time (last_seen_at,
    which the heal sensor reads as "the newest accepted export"), and records the refusal."""
    stat = file.stat()
    with connect(url) as conn, conn.transaction():
        conn.execute(
            """insert into ops.snapshots (sha256, file, size_bytes, file_mtime, status, error, first_run_id, last_run_id)
               values (%s, %s, %s, %s, 'refused', %s, %s, %s)
               on conflict (sha256) do update set status = case when ops.snapshots.status = 'accepted'
                   then 'accepted' else 'refused' end, error = excluded.error, last_run_id = excluded.last_run_id,
                   last_seen_at = case when ops.snapshots.status = 'accepted' then ops.snapshots.last_seen_at
                   else now() end""",
            (
                sha256,
                str(file),
                stat.st_size,
                dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC),
                error,
                run_id,
                run_id,
            ),
        )


def accepted_snapshot(url: str, sha256: str | None = None) -> dict | None:
    """The manifest of the given accepted snapshot, or of the latest accepted one, with the
    compact `snapshot_id` its raw rows carry (ops.snapshots is where it is defined)."""
    sql = "select parquet_dir, snapshot_id from ops.snapshots where status = 'accepted'"
    params: tuple = ()
    if sha256:
        sql += " and sha256 = %s"
        params = (sha256,)
    sql += " order by last_seen_at desc limit 1"
    with connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    if row is None or not Path(row[0], MANIFEST).exists():
        return None
    return {**load_manifest(row[0]), "snapshot_id": row[1]}


def published_manifest(url: str) -> dict | None:
    """The manifest of the export analysts currently see (ops.published_snapshot), if any."""
    with connect(url) as conn:
        row = conn.execute("select snapshot_sha256 from ops.published_snapshot").fetchone()
    return accepted_snapshot(url, row[0]) if row else None


def describe_quarters(keys: list[str], fiscal_start_month: int = 1) -> str:
    if not keys:
        return "none"
    first, last = dt.date.fromisoformat(keys[0]), dt.date.fromisoformat(keys[-1])
    return (
        f"{quarter_label(first, fiscal_start_month)}..{quarter_label(last, fiscal_start_month)} ({len(keys)} quarters)"
    )


def export_dates(manifest: dict) -> ExportDates:
    """A snapshot's export date and last SVR-RM sale date (from its parquet when a manifest of an
    older release did not record it: one column of one file)."""
    last = None
    if not manifest.get("export_order", {}).get("last_sale_date"):
        path = Path(manifest["parquet_dir"]) / "svr_rm.parquet"
        if path.exists():
            last = pl.scan_parquet(path).select(pl.col("sale_date").max()).collect().item()
    return export_order.from_manifest(manifest, last)


def quarter_totals(manifest: dict) -> dict[str, dict]:
    """Per dated table and quarter, the snapshot's totals (lib/ingest/restatements.py): recorded in the
    manifest, or summed from its parquet for a manifest of an older release."""
    if "quarter_totals" in manifest:
        return manifest["quarter_totals"]
    return {
        table: restatements.quarter_totals(table, load_table(manifest["parquet_dir"], table))
        for table in restatements.METRICS
    }


def record_restatements(url: str, sha256: str, baseline_sha256: str, rows: list[restatements.Restatement]) -> None:
    """Replace what this export restated (ops.restatements), measured against `baseline_sha256`."""
    with connect(url) as conn, conn.transaction():
        # two runs measuring the same export at once both deleted nothing, then both inserted:
        # a duplicate key failed the second (seen in CI); they take turns instead
        partition_lock(conn, "ops.restatements", sha256)
        conn.execute("delete from ops.restatements where snapshot_sha256 = %s", (sha256,))
        with conn.cursor() as cur:
            cur.executemany(
                """insert into ops.restatements (snapshot_sha256, sheet, quarter_start, quarter_label, metric,
                       published_value, new_value, change, share, baseline_sha256)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [
                    (
                        sha256,
                        r.sheet,
                        r.quarter,
                        r.quarter_label,
                        r.metric,
                        r.before,
                        r.after,
                        r.change,
                        r.share,
                        baseline_sha256,
                    )
                    for r in rows
                ],
            )


def load_restatements(url: str, sha256: str) -> tuple[str | None, list[restatements.Restatement]]:
    """(baseline sha256, rows) of what an export restated, as ops.restatements holds them."""
    with connect(url) as conn:
        found = conn.execute(
            """select sheet, quarter_start, quarter_label, metric, published_value, new_value, change, share,
                      baseline_sha256 from ops.restatements where snapshot_sha256 = %s
                order by sheet, quarter_start, metric""",
            (sha256,),
        ).fetchall()
    rows = [
        restatements.Restatement(
            sheet, quarter.isoformat(), named, metric, _number(before), _number(after), _number(change), share
        )
        for sheet, quarter, named, metric, before, after, change, share, _ in found
    ]
    return (found[0][8] if found else None), rows


def _number(value) -> float | int:
    """numeric -> int where whole (units, lines), float otherwise (money)."""
    return int(value) if value == int(value) else float(value)


def rows_for_quarter(spec, frame: pl.DataFrame, key: str, snapshot_id: int, label: str) -> pl.DataFrame:
    """One quarter's rows of a sheet as raw.<table> holds them: a dated sheet's rows of that
    quarter, a reference sheet's rows as known at that quarter; each with its snapshot's id."""
    quarter = pl.lit(key).str.to_date()
    if spec.date_field:
        part = frame.filter(pl.col("quarter_start") == quarter)
    else:
        part = frame.with_columns(quarter_start=quarter, quarter_label=pl.lit(label))
    return part.with_columns(snapshot_id=pl.lit(snapshot_id, dtype=pl.Int32))

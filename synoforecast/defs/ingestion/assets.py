"""Workbook snapshot and one quarterly-partitioned asset per sheet, loaded into `raw.*` by COPY."""

from pathlib import Path

import dagster as dg
import polars as pl

from synoforecast.defs.partitions import QUARTERLY, existing_keys, label, partition_quarters
from synoforecast.defs.resources import WarehouseResource
from synoforecast.defs.runs import ALLOW_SHRINK_TAG, REFUSED_TAG, REPUBLISH_TAG, snapshot_for_run
from synoforecast.lib.ingest import export_order, quality, reingest, restatements, snapshots
from synoforecast.lib.ingest.contract import SHEETS, SheetSpec
from synoforecast.lib.ingest.inbox import file_sha256, newest_workbook
from synoforecast.lib.ingest.workbook import WorkbookRead, WorkbookRefused, read_workbook
from synoforecast.lib.quarters import parse_key, to_key
from synoforecast.lib.rendering import markdown_table
from synoforecast.lib.warehouse.connection import replace_rows
from synoforecast.lib.warehouse.schema import RAW_TABLES, column_names
from synoforecast.settings import DBT_PROJECT_DIR, get_settings, reader_options, record_data_start

RAW_DATED = {s.table: s.date_field is not None for s in SHEETS}


class WorkbookSnapshotConfig(dg.Config):
    path: str = ""
    """Workbook to ingest; empty means the newest workbook in the inbox."""


def _preview(frame: pl.DataFrame, rows: int = 5) -> dg.MetadataValue:
    head = frame.head(rows)
    return dg.MetadataValue.md(markdown_table(head.columns, head.iter_rows()))


@dg.asset(group_name="ingestion", kinds={"excel", "python"})
def workbook_snapshot(
    context: dg.AssetExecutionContext, config: WorkbookSnapshotConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Validates one sale-out workbook against the contract and keeps a parsed copy
    (parquet per sheet + manifest) that the per-quarter sheet assets load from."""
    settings = get_settings()
    path = Path(config.path).resolve() if config.path else newest_workbook(settings.inbox_dir)
    url = warehouse.get_url()
    context.log.info(f"reading {path}")
    try:
        read = read_workbook(path, **reader_options(settings))
    except WorkbookRefused as exc:
        if path.is_file():
            snapshots.record_refused(url, path, file_sha256(path), str(exc), context.run_id)
        context.instance.add_run_tags(context.run_id, {REFUSED_TAG: "true"})
        raise dg.Failure(
            description=f"workbook refused: {exc}", metadata={"file": str(path), "error": str(exc)}, allow_retries=False
        ) from None
    baseline = snapshots.published_manifest(url)
    dates, order, republished_over = check_export_order(context, url, path, read, baseline)
    complete = [q.isoformat() for q in read.complete_quarters]
    fingerprints = read.fingerprints()  # canonical digests of every sheet: computed once
    expected = quality.expected_fingerprints(
        fingerprints, complete, existing_keys([parse_key(k) for k in complete]), RAW_DATED
    )
    changed = reingest.stale_partitions(url, expected)  # every partition to re-publish (drives the run)
    content_changed = reingest.stale_partitions(url, {t: v for t, v in expected.items() if t.startswith("raw.")})
    shrink = quality.shrinkage(read.report(), baseline, settings.shrink_max_share)
    allowed = context.run.tags.get(ALLOW_SHRINK_TAG, "").lower() == "true"
    blocked = not shrink.passed and not allowed
    totals, restated = measure_restatements(url, read, baseline, expected, settings.fiscal_year_start_month)
    manifest = snapshots.write_snapshot(
        read,
        settings.ingestion_dir,
        extra={
            "changed_quarter_keys": changed,
            "baseline_sha256": baseline["sha256"] if baseline else None,
            "reader_digest": reader_digest(settings),  # lets an identical re-ingest skip all of this
            "fingerprints": fingerprints,
            "expected_fingerprints": {**expected, "derived": expected["dbt"]},
            "shrink": {
                "passed": shrink.passed,
                "summary": shrink.summary,
                "allowed": allowed,
                "blocked": blocked,
                **shrink.metadata,
            },
            "export_order": {**dates.to_dict(), "summary": order.summary, "republished_over": republished_over},
            "quarter_totals": totals,
            "restatements": restated,
        },
    )
    snapshots.record_accepted(
        url, manifest, context.run_id, snapshots.quarantined_rows(read), republished_over=republished_over
    )
    material = restatements.material(
        [restatements.Restatement(**r) for r in restated["rows"]], settings.restatement_material_share
    )
    if material:
        context.log.warning(
            f"{len(material)} published value(s) restated by more than "
            f"{settings.restatement_material_share:.0%}: "
            f"{'; '.join(r.describe() for r in material[:10])}"
        )
    if read.complete_quarters and record_data_start(settings, min(read.complete_quarters)):  # issue 12
        context.log.info(
            f"partitions start at the data from the next load: {label(to_key(min(read.complete_quarters)))}"
        )
    changed_labels = [label(k) for k in content_changed]
    context.log.info(
        f"quarters whose sheets differ from what is published: {changed_labels or 'none'}; "
        f"partitions to re-publish: {[label(k) for k in changed] or 'none'}"
    )
    if blocked:  # held for the operator: the sensor must not retry it either
        context.instance.add_run_tags(context.run_id, {REFUSED_TAG: "true"})
        context.log.error(
            f"publication stopped: {shrink.summary}. Re-run with `synoforecast ingest --allow-shrink` "
            f"(or the run tag {ALLOW_SHRINK_TAG}=true) if the export is right."
        )
    svr = read.sheets["SVR-RM"]
    context.log.info(
        f"accepted {path.name}: {svr.rows_loaded} SVR-RM rows, quarters "
        f"{snapshots.describe_quarters(manifest['complete_quarter_keys'], settings.fiscal_year_start_month)}"
    )
    return dg.MaterializeResult(
        metadata={
            "file": str(path),
            "sha256": read.sha256,
            "size_bytes": read.size_bytes,
            "read_seconds": read.read_seconds,
            "sheets": dg.MetadataValue.json(manifest["sheets"]),
            "ignored_sheets": dg.MetadataValue.json(read.ignored_sheets),
            "hidden_sheets": dg.MetadataValue.json(read.hidden_sheets),
            "complete_quarter_keys": dg.MetadataValue.json(manifest["complete_quarter_keys"]),
            "changed_quarter_keys": dg.MetadataValue.json(changed),
            "changed_quarters": dg.MetadataValue.json(changed_labels),
            "stale_quarters": dg.MetadataValue.json([label(k) for k in changed]),
            "baseline_sha256": baseline["sha256"] if baseline else "none (first published snapshot)",
            "quarter_hashes": dg.MetadataValue.json(read.quarter_hashes),
            "shrink_blocked": blocked,
            "shrink_summary": shrink.summary,
            "export_date": dates.export_date.isoformat(),
            "last_sale_date": dates.last_sale_date.isoformat() if dates.last_sale_date else "none",
            "export_order": order.summary,
            "republished": republished_over is not None,
            "restated": dg.MetadataValue.json([r.describe() for r in material]),
            "restated_material_share": settings.restatement_material_share,
            "dagster/row_count": svr.rows_loaded,
            "preview": _preview(svr.frame),
        }
    )


def check_export_order(
    context: dg.AssetExecutionContext, url: str, path: Path, read: WorkbookRead, baseline: dict | None
) -> tuple[export_order.ExportDates, export_order.Order, str | None]:
    """This export's dates against the published export's (lib/ingest/export_order.py): an older one is
    refused like any workbook the platform will not take, unless the run carries REPUBLISH_TAG.
    Returns (its dates, the comparison, the sha256 it is re-published over, if it is)."""
    dates = export_order.ExportDates(read.file, read.sha256, export_order.export_day(read.mtime), read.last_data_day)
    published = snapshots.export_dates(baseline) if baseline else None
    order = export_order.compare(dates, published)
    if not order.older:
        return dates, order, None
    if context.run.tags.get(REPUBLISH_TAG, "").lower() == "true":
        context.log.warning(f"re-published on purpose ({REPUBLISH_TAG}=true): {order.summary}")
        return dates, order, published.sha256
    message = export_order.refusal(
        dates, published, f"`synoforecast ingest --republish {path.name}` (or the run tag {REPUBLISH_TAG}=true)"
    )
    snapshots.record_refused(url, path, read.sha256, message, context.run_id)
    context.instance.add_run_tags(context.run_id, {REFUSED_TAG: "true"})
    raise dg.Failure(
        description=f"workbook refused: {message}", metadata={"file": str(path), "error": message}, allow_retries=False
    )


def measure_restatements(
    url: str, read: WorkbookRead, baseline: dict | None, expected: dict, fiscal_start_month: int
) -> tuple[dict, dict]:
    """(this export's per-quarter totals, what it restates of the published export), the latter
    also stored in ops.restatements. The published export ingested again keeps what it was
    measured to restate when it came (measuring it against itself would erase that)."""
    totals = {
        s.spec.table: restatements.quarter_totals(s.spec.table, s.frame)
        for s in read.sheets.values()
        if s.spec.table in restatements.METRICS
    }
    if baseline is None:
        return totals, {"baseline": None, "rows": []}
    if baseline["sha256"] == read.sha256:
        measured_against, rows = snapshots.load_restatements(url, read.sha256)
    else:
        quarters = restatements.comparable_quarters(baseline, {"expected_fingerprints": expected})
        rows = restatements.measure(snapshots.quarter_totals(baseline), totals, quarters, fiscal_start_month)
        measured_against = baseline["sha256"]
        snapshots.record_restatements(url, read.sha256, measured_against, rows)
    return totals, {"baseline": measured_against, "rows": [r.to_dict() for r in rows if r.change]}


def reader_digest(settings) -> str:
    """What this snapshot's reading depended on besides the file (lib/ingest/reingest.py)."""
    return reingest.reader_digest(reader_options(settings), DBT_PROJECT_DIR / "seeds", settings.partitions_start)


def build_sheet_asset(spec: SheetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.table,
        key_prefix="raw",
        **QUARTERLY,
        deps=[workbook_snapshot],
        group_name="ingestion",
        kinds={"postgres"},
        description=f"Sheet '{spec.name}' of the latest accepted snapshot, one quarter per partition, "
        f"in raw.{spec.table}.",
    )
    def _sheet(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        url = warehouse.get_url()
        manifest = snapshot_for_run(context, url)
        frame = snapshots.load_table(manifest["parquet_dir"], spec.table)
        complete = manifest["complete_quarter_keys"]
        last_complete = complete[-1] if complete else ""
        incomplete = set(manifest.get("fingerprints", {}).get("incomplete", {}).get(spec.table, []))
        expected = manifest.get("expected_fingerprints", {}).get(f"raw.{spec.table}", {})
        columns = column_names(RAW_TABLES[spec.table])
        loaded: dict[str, int] = {}
        skipped: list[str] = []
        for quarter in partition_quarters(context):
            key = to_key(quarter)
            if key > last_complete or key in incomplete:
                skipped.append(label(key))  # partial (or not yet exported) in this sheet: keep what is there
                continue
            rows = (
                pl.DataFrame()
                if frame is None
                else snapshots.rows_for_quarter(spec, frame, key, manifest["snapshot_id"], label(key)).select(columns)
            )
            result = replace_rows(
                url,
                f"raw.{spec.table}",
                rows,
                "quarter_start = %s",
                (quarter,),
                context.run_id,
                key,
                snapshot=manifest["sha256"],
                fingerprint=expected.get(key),
            )
            loaded[label(key)] = result.rows_written
        if skipped:
            context.log.warning(
                f"{spec.name}: not complete in snapshot {manifest['sha256'][:12]}, left as is: {skipped}"
            )
        return dg.MaterializeResult(
            metadata={
                "snapshot": manifest["sha256"],
                "sheet_present": frame is not None,
                "rows_loaded": sum(loaded.values()),
                "rows_per_quarter": dg.MetadataValue.json(loaded),
                "quarters_skipped": dg.MetadataValue.json(skipped),
                "dagster/row_count": sum(loaded.values()),
            }
        )

    return _sheet


sheet_assets = [build_sheet_asset(spec) for spec in SHEETS]

"""Is this workbook exactly what the warehouse already publishes? Then `ingest` has nothing to do.

A re-ingest of identical bytes used to load the code location, start a snapshot run and
re-read the workbook (10 s at 1M rows) only to find no stale partition. This check needs
neither the workbook's cells nor Dagster: the same file (path and mtime, which decide the
complete quarters), accepted under the same reader settings and platform version, not held
by the shrink guard, every partition holding its expected fingerprint, and `published`
showing it. Anything else (a new name or mtime, changed aliases, a partition a killed run
left stale) takes the full path.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import psycopg

from synoforecast.lib.ingest.quality import stale_quarters
from synoforecast.lib.ingest.snapshots import MANIFEST
from synoforecast.lib.warehouse import partition_state
from synoforecast.lib.warehouse.connection import connect


def reader_digest(options: dict, seeds_dir: Path, partitions_start: object = None) -> str:
    """What a reading depends on besides the file: the reader's options (settings.reader_options),
    the seeds, the configured partitions start, the platform's version."""
    payload = {
        "aliases": options["aliases"].extra,
        "fiscal_start_month": options["fiscal_start_month"],
        "quarantine_max_share": options["quarantine_max_share"],
        "earliest_date": str(options["earliest_date"]),
        "date_margin_days": options["date_margin_days"],
        "date_order": options["date_order"],
        "limits": options["limits"],
        "reader": _reader_source(),
        "seeds": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(seeds_dir.glob("*.csv"))},
        "partitions_start": partitions_start,
        "version": _version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _reader_source() -> str:
    """The reader's own code: a change in how cells are read re-reads a workbook of the same
    bytes (a checkout's version does not change with its code)."""
    from synoforecast.lib.ingest import contract, date_text, number_text, workbook, xlsx_parts

    digest = hashlib.sha256()
    for module in (contract, date_text, number_text, workbook, xlsx_parts):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _version() -> str:
    try:
        return metadata.version("synoforecast")
    except metadata.PackageNotFoundError:
        return "unknown"


def required_scopes() -> dict[str, int]:
    """State rows each partition needs per target: one per cohort for forecast.forecasts."""
    from synoforecast.lib.forecasting.cohorts import COHORTS

    return {"forecast.forecasts": len(COHORTS)}


def stale_partitions(url: str, expected: dict[str, dict[str, str]]) -> list[str]:
    """Quarters whose published partitions do not hold this snapshot's content (the
    baseline is what is published, partition by partition: ops.partition_state)."""
    with connect(url) as conn:
        state = partition_state.load(conn)
    return stale_quarters(expected, state, required_scopes())


def already_published(url: str, path: Path, sha256: str, digest: str) -> str | None:
    """Why there is nothing to do for this file (None: ingest it)."""
    try:
        with connect(url) as conn:
            row = conn.execute(
                "select s.parquet_dir, s.file, extract(epoch from s.file_mtime), p.snapshot_sha256 "
                "from ops.snapshots s left join ops.published_snapshot p on true "
                "where s.sha256 = %s and s.status = 'accepted'",
                (sha256,),
            ).fetchone()
            state = partition_state.load(conn) if row else []
    except psycopg.Error:
        return None  # a warehouse without the platform's tables yet: the full path creates them
    if row is None or row[3] != sha256 or row[0] is None or row[1] != str(path):
        return None
    if abs(float(row[2]) - path.stat().st_mtime) > 1e-3:
        return None
    manifest_file = Path(row[0], MANIFEST)
    if not manifest_file.exists():
        return None
    manifest = json.loads(manifest_file.read_text())
    expected = {t: keys for t, keys in manifest.get("expected_fingerprints", {}).items() if t != "derived"}
    if manifest.get("reader_digest") != digest or not expected or manifest.get("shrink", {}).get("blocked"):
        return None
    if stale_quarters(expected, state, required_scopes()):
        return None
    return (
        f"{path.name} (snapshot {sha256[:12]}) is what the warehouse publishes already, every partition "
        "from its content"
    )

"""Snapshot quality rules (pure): change detection and the findings behind the snapshot checks.

Each rule reads snapshot manifests (see lib/ingest/snapshots.py) and returns a Finding; the
Dagster checks in defs/ingestion/checks.py only fetch the manifests and report it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synoforecast.lib.ingest.contract import SHEETS
from synoforecast.lib.ingest.fingerprint import EMPTY, combine


@dataclass(frozen=True)
class Finding:
    passed: bool
    summary: str
    metadata: dict = field(default_factory=dict)


ABSENT = "absent"  # fingerprint of a reference sheet the workbook does not have (the seed applies)
PARTIAL = "partial"
# Written per quarter partition after the sheets: the dbt marts (one state row per quarter),
# every cohort's forecast, the evaluation. Their content depends on every quarter up to
# theirs and on the reference sheets, hence a cumulative fingerprint.
DERIVED_TARGETS = ("dbt", "forecast.forecasts", "forecast.evaluation")


def expected_fingerprints(
    fingerprints: dict, complete_keys: list[str], partition_keys: list[str], raw_tables: dict[str, bool]
) -> dict[str, dict[str, str]]:
    """target -> {partition key: fingerprint} that the published partitions must hold for
    this snapshot (`fingerprints` from WorkbookRead.fingerprints(); `raw_tables` maps each
    raw table to whether it is dated). A sheet's quarter that is incomplete in this export
    is expected nowhere: it is never published, so it stays stale until it completes."""
    sheets, references = fingerprints.get("sheets", {}), fingerprints.get("references", {})
    incomplete = {t: set(keys) for t, keys in fingerprints.get("incomplete", {}).items()}
    wanted = set(partition_keys)
    out: dict[str, dict[str, str]] = {}
    for table, dated in raw_tables.items():
        if dated:
            out[f"raw.{table}"] = {
                k: sheets.get(table, {}).get(k, EMPTY)
                for k in complete_keys
                if k in wanted and k not in incomplete.get(table, set())
            }
        else:
            out[f"raw.{table}"] = {k: references.get(table, ABSENT) for k in complete_keys if k in wanted}
    derived: dict[str, str] = {}
    running = combine(f"{t}={references.get(t, ABSENT)}" for t, dated in sorted(raw_tables.items()) if not dated)
    for k in complete_keys:
        running = combine(
            [
                running,
                *(
                    f"{t}:{k}=" + (PARTIAL if k in incomplete.get(t, set()) else sheets.get(t, {}).get(k, EMPTY))
                    for t, dated in sorted(raw_tables.items())
                    if dated
                ),
            ]
        )
        derived[k] = running
    for target in DERIVED_TARGETS:
        out[target] = {k: v for k, v in derived.items() if k in wanted}
    return out


def stale_quarters(
    expected: dict[str, dict[str, str]],
    state: list[tuple[str, str, str, str]],
    required_scopes: dict[str, int] | None = None,
) -> list[str]:
    """Partition keys where some target does not hold what this snapshot says it should.

    `state` rows are (target, scope, partition_key, fingerprint) from ops.partition_state;
    a target needs `required_scopes[target]` matching rows per key (1 by default; one per
    cohort for forecast.forecasts). A partition never written, written from another
    export, or written by a run that died half-way (dbt) is stale."""
    required_scopes = required_scopes or {}
    matching: dict[tuple[str, str], int] = {}
    for target, _scope, key, fingerprint in state:
        if expected.get(target, {}).get(key) == fingerprint:
            matching[(target, key)] = matching.get((target, key), 0) + 1
    stale = {
        key
        for target, keys in expected.items()
        for key in keys
        if matching.get((target, key), 0) < required_scopes.get(target, 1)
    }
    return sorted(stale)


def shrinkage(current: dict, baseline: dict | None, max_share: float) -> Finding:
    """Rows or totals (units, revenue) of a sheet that fell by more than `max_share` against
    the published snapshot: a broken export (an emptied sheet, a filtered pivot) must not
    replace the published numbers unless an operator says so."""
    if baseline is None:
        return Finding(True, "no published snapshot to compare with")
    drops, figures = [], {}
    for sheet, before in baseline.get("sheets", {}).items():
        now = current.get("sheets", {}).get(sheet, {})
        for measure in ("rows_loaded", "units_total", "revenue_total"):
            old, new = before.get(measure) or 0, now.get(measure) or 0
            if old > 0 and (old - new) / old > max_share:
                figures.setdefault(sheet, {})[measure] = {"published": old, "now": new}
                drops.append(f"{sheet} {measure.replace('_', ' ')} {old:,} -> {new:,} ({(new - old) / old:+.0%})")
    summary = (
        f"dropped by more than {max_share:.0%} against the published snapshot {baseline['sha256'][:12]}: "
        f"{'; '.join(drops)}"
        if drops
        else f"no sheet shrank by more than {max_share:.0%}"
    )
    return Finding(not drops, summary, {"drops": figures, "baseline": baseline["sha256"], "max_share": max_share})


def row_count_delta(current: dict, baseline: dict | None, max_pct: float) -> Finding:
    """Per-sheet rows loaded against the previous published snapshot; warn beyond max_pct."""
    if baseline is None:
        return Finding(True, "no previous published snapshot to compare with")
    deltas, over = {}, []
    for sheet, stats in current["sheets"].items():
        before = baseline["sheets"].get(sheet, {}).get("rows_loaded")
        if not before:
            continue
        pct = round((stats["rows_loaded"] - before) / before * 100, 2)
        deltas[sheet] = {"before": before, "now": stats["rows_loaded"], "delta_pct": pct}
        if abs(pct) > max_pct:
            over.append(f"{sheet} {pct:+.1f}%")
    summary = f"row counts moved more than {max_pct:g}%: {', '.join(over)}" if over else "row counts within range"
    return Finding(not over, summary, {"deltas": deltas, "baseline": baseline["sha256"]})


def quarantine(current: dict) -> Finding:
    """Rows that could not be parsed (below the refusal share) are kept out and listed."""
    rows = {s: v["rows_quarantined"] for s, v in current["sheets"].items() if v["rows_quarantined"]}
    cells = {s: v.get("quarantined_cells", []) for s, v in current["sheets"].items() if v["rows_quarantined"]}
    summary = f"{sum(rows.values())} rows quarantined: {rows}" if rows else "no quarantined rows"
    return Finding(not rows, summary, {"rows": rows, "first_cells": cells})


def unknown_references(current: dict) -> Finding:
    """Models missing from Device Bays and countries missing from the region map: kept, flagged."""
    found = {
        s: {"unknown_models": v["unknown_models"], "unknown_countries": v.get("unknown_countries", 0)}
        for s, v in current["sheets"].items()
        if v["unknown_models"] or v.get("unknown_countries")
    }
    summary = f"unknown models/countries: {found}" if found else "every model and country is known"
    return Finding(not found, summary, {"sheets": found})


def duplicate_share(current: dict, max_share: float) -> Finding:
    shares = {
        s: round(v["duplicates_removed"] / v["rows_read"], 4) for s, v in current["sheets"].items() if v["rows_read"]
    }
    over = {s: x for s, x in shares.items() if x > max_share}
    summary = f"duplicate share above {max_share:.1%}: {over}" if over else "duplicate share within range"
    return Finding(not over, summary, {"shares": shares})


def null_share(current: dict, max_share: float) -> Finding:
    """Optional columns mostly blank (e.g. Region or Tier dropped from the export); columns the
    contract expects blank on a sheet (Consumer.tier: consumer models have no tier) are not flagged."""
    expected_blank = {(spec.name, col) for spec in SHEETS for col in spec.blank_by_design}
    over = {
        f"{s}.{col}": x
        for s, v in current["sheets"].items()
        for col, x in v.get("null_shares", {}).items()
        if x > max_share and (s, col) not in expected_blank
    }
    summary = f"columns mostly blank: {over}" if over else "optional columns filled"
    return Finding(not over, summary, {"over": over})

"""Which dbt nodes a run builds, on the project's real manifest and partition-state rows."""

import json

import pytest

from synoforecast.defs.transform.project import ensure_manifest
from synoforecast.lib.transform import dbt_selection as sel

KEYS = ["2026-04-01", "2026-07-01"]
TABLES = ["c2", "consumer", "device_bays", "region_map", "svr_rm", "top_customers"]


@pytest.fixture(scope="module")
def manifest():
    return json.loads(ensure_manifest().read_text())


def raw_state(fingerprint=lambda table, key: f"{table}-{key}"):
    return [(f"raw.{t}", k, k, fingerprint(t, k)) for t in TABLES for k in KEYS]


def built(state, digest, tables=TABLES):
    return sel.built_records(tables, KEYS, state, digest)


def names(manifest, uids):
    return {manifest["nodes"][u]["name"] for u in uids}


def test_the_raw_sources_are_the_six_sheets_not_the_running_quarter(manifest):
    assert sorted(sel.source_tables(manifest)) == TABLES


def test_nothing_recorded_means_every_table_changed():
    assert sel.changed_tables(TABLES, KEYS, raw_state(), {}, "p1") == set(TABLES)


def test_a_table_is_changed_when_one_quarter_of_its_raw_content_differs_from_what_dbt_built():
    before = raw_state()
    assert sel.changed_tables(TABLES, KEYS, before, built(before, "p1"), "p1") == set()
    after = raw_state(lambda t, k: "new" if (t, k) == ("svr_rm", KEYS[-1]) else f"{t}-{k}")
    assert sel.changed_tables(TABLES, KEYS, after, built(before, "p1"), "p1") == {"svr_rm"}


def test_another_project_digest_or_a_quarter_never_built_rebuilds():
    state = raw_state()
    records = built(state, "p1")
    assert sel.changed_tables(TABLES, KEYS, state, records, "p2") == set(TABLES)  # an edited model, other vars
    without_last = {scope: fp for scope, fp in records.items() if scope != f"consumer|{KEYS[-1]}"}
    assert sel.changed_tables(TABLES, KEYS, state, without_last, "p1") == {"consumer"}
    no_raw = [row for row in state if row[0] != "raw.c2" or row[1] != KEYS[0]]  # raw never wrote it
    assert sel.changed_tables(TABLES, KEYS, no_raw, records, "p1") == {"c2"}


def test_records_hold_what_raw_holds_now_and_skip_partitions_raw_never_wrote():
    state = [row for row in raw_state() if row[0] != "raw.c2" or row[1] != KEYS[0]]
    records = sel.built_records(["c2", "svr_rm"], KEYS, state, "p1")
    assert list(records) == ["c2|2026-07-01", "svr_rm|2026-04-01", "svr_rm|2026-07-01", sel.PROJECT_SCOPE]
    assert (
        records["svr_rm|2026-04-01"]
        == sel.built_fingerprint("svr_rm-2026-04-01", "p1")
        != sel.built_fingerprint("svr_rm-2026-04-01", "p2")
    )
    assert records[sel.PROJECT_SCOPE] == "p1"


def test_a_changed_svr_rm_builds_its_descendants_only(manifest):
    plan = sel.plan(manifest, {"svr_rm"})
    built = names(manifest, plan.build)
    assert {
        "stg_svr_rm",
        "int_top_customers",
        "mart_svr_rm_quarterly",
        "mart_svr_rm_tier_quarterly",
        "mart_svr_rm_region_quarterly",
        "mart_svr_rm_customer_quarterly",
        "mart_commercial_activation",
    } <= built
    assert not built & {
        "stg_consumer",
        "mart_consumer_quarterly",
        "stg_c2",
        "stg_region_map",
        "region_map",
        "stg_running_svr_rm",
    }
    assert plan.build | plan.skip == sel.plan(manifest, None).build and not plan.build & plan.skip
    excluded = plan.exclude_args(manifest)
    assert excluded[0] == "--exclude" and set(excluded[1].split()) == names(manifest, plan.skip)


def test_a_changed_reference_sheet_reaches_every_mart_it_feeds(manifest):
    built = names(manifest, sel.plan(manifest, {"region_map"}).build)
    assert {"stg_region_map", "stg_svr_rm", "mart_svr_rm_region_quarterly"} <= built


def test_nothing_changed_builds_nothing_and_everything_builds_on_request(manifest):
    assert not sel.plan(manifest, set()).build and sel.plan(manifest, set()).exclude_args(manifest)
    everything = sel.plan(manifest, None)
    assert not everything.skip and everything.exclude_args(manifest) == []
    assert {"region_map", "device_bays", "stg_running_c2"} <= names(manifest, everything.build)


def test_the_project_counts_as_built_only_with_the_digest_it_was_built_with():
    assert not sel.project_built({}, "p1")
    recorded = built(raw_state(), "p1")
    assert sel.project_built(recorded, "p1") and not sel.project_built(recorded, "p2")


def test_nodes_are_ordered_parents_first(manifest):
    skipped = sel.plan(manifest, {"svr_rm"}).skip
    order = sel.in_build_order(manifest, skipped)
    assert sorted(order) == sorted(skipped)
    position = {uid: i for i, uid in enumerate(order)}
    for uid in order:
        assert all(position[p] < position[uid] for p in manifest["parent_map"][uid] if p in position)
    assert position["model.synoforecast.stg_consumer"] < position["model.synoforecast.mart_consumer_quarterly"]

"""The inbox sensor, evaluated with build_sensor_context against a real folder."""

import os
import shutil

import dagster as dg

from synoforecast.defs.ingestion.sensors import inbox_sensor
from synoforecast.sample.generator import SampleSpec, write_sample_workbook
from synoforecast_tests.support.definitions import sensor_context


def _tick(cursor=None):
    with dg.instance_for_test() as instance:
        context = sensor_context(instance, cursor=cursor)
        result = inbox_sensor(context)
    return result.run_requests or [], result.cursor


def test_stable_new_workbook_is_requested_once_with_its_sha_as_run_key(project_env):
    inbox = project_env["inbox"]
    path = inbox / "week-32.xlsx"
    write_sample_workbook(path, SampleSpec(rows=300, quarters=8))
    (inbox / "~$week-32.xlsx").write_bytes(b"lock")  # Excel's lock file
    (inbox / "notes.txt").write_text("not a workbook")

    requests, cursor = _tick()
    assert requests == []  # first sight: wait until size and mtime are stable
    requests, cursor = _tick(cursor)
    assert len(requests) == 1
    request = requests[0]
    assert request.run_key and len(request.run_key) == 64
    assert request.run_config["ops"]["workbook_snapshot"]["config"]["path"] == str(path)
    assert request.job_name == "ingest_snapshot_job"

    requests, cursor = _tick(cursor)
    assert requests == []  # nothing new

    shutil.copyfile(path, inbox / "week-32-copy.xlsx")  # same content, new name
    requests, cursor = _tick(cursor)
    requests, cursor = _tick(cursor)
    assert requests == []


def test_growing_file_waits_and_changed_content_runs_again(project_env):
    inbox = project_env["inbox"]
    path = inbox / "export.xlsx"
    write_sample_workbook(path, SampleSpec(rows=300, quarters=8, seed=1))
    _, cursor = _tick()
    with open(path, "ab") as fh:  # still being copied
        fh.write(b"\0" * 10)
    requests, cursor = _tick(cursor)
    assert requests == []
    write_sample_workbook(path, SampleSpec(rows=300, quarters=8, seed=2))  # new content, old name
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    requests, cursor = _tick(cursor)
    assert requests == []
    requests, cursor = _tick(cursor)
    assert len(requests) == 1


def test_content_already_ingested_through_the_cli_is_not_requested_again(project_env):
    from synoforecast.definitions import defs
    from synoforecast.defs.runs import SNAPSHOT_TAG
    from synoforecast.lib.ingest.inbox import file_sha256

    path = project_env["inbox"] / "done.xlsx"
    write_sample_workbook(path, SampleSpec(rows=300, quarters=8, seed=9))
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            defs.resolve_job_def("ingest_snapshot_job"), tags={SNAPSHOT_TAG: file_sha256(path)}
        )
        instance.report_run_failed(run)  # a failed attempt does not count as ingested
        context = sensor_context(instance)
        first = inbox_sensor(context)
        second = inbox_sensor(sensor_context(instance, cursor=first.cursor))
        assert len(second.run_requests) == 1
        succeeded = instance.create_run_for_job(
            defs.resolve_job_def("ingest_snapshot_job"),
            tags={SNAPSHOT_TAG: file_sha256(path)},
            status=dg.DagsterRunStatus.SUCCESS,
        )
        assert succeeded.status == dg.DagsterRunStatus.SUCCESS
        fresh = inbox_sensor(sensor_context(instance))
        again = inbox_sensor(sensor_context(instance, cursor=fresh.cursor))
        assert again.run_requests == []


def test_steady_state_ticks_only_stat_files_even_with_5000_in_the_inbox(project_env):
    """Known files are never read again while size and mtime hold (timing: benchmarks/sensor_tick.py)."""
    from synoforecast.lib.ingest.inbox import InboxCursor, scan_inbox

    inbox = project_env["inbox"]
    for i in range(5000):
        (inbox / f"export-{i:04d}.xlsx").write_bytes(b"PK\x03\x04" + i.to_bytes(4, "little"))
    ready, cursor = scan_inbox(inbox, InboxCursor())
    assert ready == []  # first sight: not stable yet
    ready, cursor = scan_inbox(inbox, cursor)
    assert len(ready) == 5000 and len({r.sha256 for r in ready}) == 5000
    target = inbox / "export-0042.xlsx"
    stat = target.stat()
    target.write_bytes(b"PK\x03\x04" + (99999).to_bytes(4, "little"))  # same size, new bytes
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ready, cursor = scan_inbox(inbox, cursor)
    assert ready == []  # not re-hashed: size and mtime unchanged
    assert cursor.files["export-0042.xlsx"][2] == [r for r in cursor.seen_hashes][42]


def _sensor_runs(instance):
    """Every request the inbox sensor makes, run as the daemon launches it."""
    from synoforecast.definitions import defs
    from synoforecast.defs.runs import SNAPSHOT_JOB

    cursor, runs = None, []
    for _ in range(2):  # first sight, then stable
        tick = inbox_sensor(sensor_context(instance, cursor=cursor))
        cursor = tick.cursor
        for request in tick.run_requests or []:
            runs.append(
                defs.resolve_job_def(SNAPSHOT_JOB).execute_in_process(
                    run_config=request.run_config, tags=request.tags, instance=instance, raise_on_error=False
                )
            )
    return runs


def test_the_sensor_reads_a_european_export_in_its_convention_and_refuses_a_stray_cell(project_env):
    """Issue 26 through the sensor: the snapshot run it starts reads what the export says, and
    a file the reader used to abort on is a refusal naming the cell, recorded, never retried."""
    import json

    import openpyxl
    import psycopg

    from synoforecast.defs.runs import REFUSED_TAG

    inbox = project_env["inbox"]
    source = inbox.parent / "sample.xlsx"
    stats = write_sample_workbook(source, SampleSpec(rows=400, quarters=6))
    wb = openpyxl.load_workbook(source)
    for row in wb["SVR-RM"].iter_rows(min_row=2):
        row[8].value = f"{row[8].value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    wb.save(inbox / "distributor.xlsx")
    wb["SVR-RM"]["XFD1048576"] = "x"
    wb.save(inbox / "stray.xlsx")
    with dg.instance_for_test() as instance:
        runs = {
            run.dagster_run.run_config["ops"]["workbook_snapshot"]["config"]["path"]: run
            for run in _sensor_runs(instance)
        }
        accepted, refused = runs[str(inbox / "distributor.xlsx")], runs[str(inbox / "stray.xlsx")]
        assert accepted.success and not refused.success
        assert instance.get_run_by_id(refused.run_id).tags.get(REFUSED_TAG) == "true"
    with psycopg.connect(project_env["url"]) as conn:
        rows = dict(conn.execute("select file, status from ops.snapshots").fetchall())
        sheets, error = conn.execute(
            "select s.sheets, r.error from ops.snapshots s, ops.snapshots r "
            "where s.status = 'accepted' and r.status = 'refused'"
        ).fetchone()
    assert rows == {str(inbox / "distributor.xlsx"): "accepted", str(inbox / "stray.xlsx"): "refused"}
    sheets = sheets if isinstance(sheets, dict) else json.loads(sheets)
    assert sheets["SVR-RM"]["revenue_total"] == round(stats.sheets["SVR-RM"].revenue_total, 2)
    assert sheets["SVR-RM"]["conventions"]["revenue_usd"].startswith("decimal comma")
    assert "reaches cell XFD1048576" in error

"""The inbox sensor, evaluated with build_sensor_context against a real folder."""

import os
import shutil

import dagster as dg

from synoforecast.defs.ingestion.sensors import inbox_sensor
from synoforecast.lib.sample import SampleSpec, write_sample_workbook


def _tick(cursor=None):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
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
    from synoforecast.defs.ingestion.assets import SNAPSHOT_TAG
    from synoforecast.definitions import defs
    from synoforecast.lib.inbox import file_sha256

    path = project_env["inbox"] / "done.xlsx"
    write_sample_workbook(path, SampleSpec(rows=300, quarters=8, seed=9))
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(defs.resolve_job_def("ingest_snapshot_job"),
                                          tags={SNAPSHOT_TAG: file_sha256(path)})
        instance.report_run_failed(run)  # a failed attempt does not count as ingested
        context = dg.build_sensor_context(instance=instance)
        first = inbox_sensor(context)
        second = inbox_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert len(second.run_requests) == 1
        succeeded = instance.create_run_for_job(defs.resolve_job_def("ingest_snapshot_job"),
                                                tags={SNAPSHOT_TAG: file_sha256(path)},
                                                status=dg.DagsterRunStatus.SUCCESS)
        assert succeeded.status == dg.DagsterRunStatus.SUCCESS
        fresh = inbox_sensor(dg.build_sensor_context(instance=instance))
        again = inbox_sensor(dg.build_sensor_context(instance=instance, cursor=fresh.cursor))
        assert again.run_requests == []


def test_steady_state_ticks_only_stat_files_even_with_5000_in_the_inbox(project_env):
    """Known files are never read again while size and mtime hold (timing: benchmarks/sensor_tick.py)."""
    from synoforecast.lib.inbox import InboxCursor, scan_inbox

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

"""Inbox scanning: candidates, stability across two scans, content identity and the cursor."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from synoforecast.lib.ingest.inbox import (
    InboxCursor,
    ReadyWorkbook,
    file_sha256,
    is_candidate,
    list_workbooks,
    newest_workbook,
    scan_inbox,
)

T0 = 1_750_000_000_000_000_000  # fixed mtimes (ns) so tests never depend on the clock's resolution


def put(path: Path, content: bytes, mtime_ns: int = T0) -> Path:
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("name", ["snapshot.xlsx", "Snapshot W32.XLSX", "macro.xlsm", "a.b.xlsx"])
def test_workbooks_are_candidates(name):
    assert is_candidate(name)


@pytest.mark.parametrize(
    "name",
    [
        "~$snapshot.xlsx",  # Office lock file
        "~snapshot.xlsx",
        ".snapshot.xlsx",  # hidden
        ".~lock.snapshot.xlsx#",
        "snapshot.xlsx.tmp",
        "snapshot.tmp",
        "snapshot.xlsx.part",
        "snapshot.xlsx.crdownload",
        "snapshot.xls",  # legacy: refused later by the reader, never picked up here
        "snapshot.csv",
        "notes.txt",
        "snapshot",
    ],
)
def test_non_candidates(name):
    assert not is_candidate(name)


def test_list_workbooks_skips_folders_lock_files_and_missing_inbox(tmp_path):
    put(tmp_path / "a.xlsx", b"a")
    put(tmp_path / "~$a.xlsx", b"lock")
    put(tmp_path / "b.csv", b"b")
    (tmp_path / "folder.xlsx").mkdir()
    assert sorted(e.name for e in list_workbooks(tmp_path)) == ["a.xlsx"]
    assert list_workbooks(tmp_path / "absent") == []


def test_file_sha256_matches_hashlib_across_chunks(tmp_path):
    content = os.urandom(10_000)
    path = put(tmp_path / "x.xlsx", content)
    assert file_sha256(path) == sha(content)
    assert file_sha256(path, chunk=7) == sha(content)


def test_a_workbook_is_ready_after_two_scans_with_the_same_size_and_mtime(tmp_path):
    content = b"workbook v1"
    path = put(tmp_path / "snap.xlsx", content)
    ready, cursor = scan_inbox(tmp_path, InboxCursor())
    assert ready == []
    assert cursor.files == {"snap.xlsx": [len(content), T0, None]}

    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == [ReadyWorkbook(str(path), sha(content))]
    assert cursor.files["snap.xlsx"] == [len(content), T0, sha(content)]
    assert cursor.seen_hashes == [sha(content)]

    ready, cursor_after = scan_inbox(tmp_path, cursor)  # handled: never requested again
    assert ready == []
    assert cursor_after == cursor


def test_a_file_still_being_copied_is_not_ready(tmp_path):
    path = put(tmp_path / "copying.xlsx", b"PK\x03\x04 part one")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    put(path, b"PK\x03\x04 part one, part two", T0 + 1_000_000_000)  # grew between scans
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == []
    assert cursor.files["copying.xlsx"][2] is None
    os.utime(path, ns=(T0 + 2_000_000_000,) * 2)  # touched again, same size: still changing
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == []
    ready, cursor = scan_inbox(tmp_path, cursor)  # now stable
    assert [r.path for r in ready] == [str(path)]


def test_lock_files_are_never_requested(tmp_path):
    put(tmp_path / "~$snap.xlsx", b"lock")
    put(tmp_path / "snap.xlsx.tmp", b"tmp")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == [] and cursor.files == {}


def test_same_content_under_a_new_name_is_not_requested_again(tmp_path):
    content = b"the same export"
    put(tmp_path / "snap.xlsx", content)
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert len(ready) == 1

    put(tmp_path / "snap (copy).xlsx", content, T0 + 5)
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == []
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == []
    assert cursor.files["snap (copy).xlsx"][2] == sha(content)  # hashed once, remembered as handled
    assert cursor.seen_hashes == [sha(content)]


def test_new_content_under_an_old_name_is_requested_once_stable(tmp_path):
    path = put(tmp_path / "snap.xlsx", b"export of week 31")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert len(ready) == 1

    new = b"export of week 32, corrected"
    put(path, new, T0 + 7 * 86_400 * 10**9)
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == []  # changed: wait one more scan
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == [ReadyWorkbook(str(path), sha(new))]
    assert cursor.seen_hashes == [sha(b"export of week 31"), sha(new)]


def test_two_new_files_with_identical_content_in_one_scan_give_one_request(tmp_path):
    put(tmp_path / "a.xlsx", b"same")
    put(tmp_path / "b.xlsx", b"same")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert [Path(r.path).name for r in ready] == ["a.xlsx"]
    assert set(cursor.files) == {"a.xlsx", "b.xlsx"}


def test_deleted_files_leave_the_cursor_but_their_hash_is_remembered(tmp_path):
    path = put(tmp_path / "snap.xlsx", b"content")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    _, cursor = scan_inbox(tmp_path, cursor)
    path.unlink()
    ready, cursor = scan_inbox(tmp_path, cursor)
    assert ready == [] and cursor.files == {}
    assert cursor.seen_hashes == [sha(b"content")]


def test_cursor_dump_load_round_trip(tmp_path):
    put(tmp_path / "snap.xlsx", b"content")
    put(tmp_path / "pending.xlsx", b"pending", T0 + 1)
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    _, cursor = scan_inbox(tmp_path, cursor)
    put(tmp_path / "later.xlsx", b"later")
    _, cursor = scan_inbox(tmp_path, cursor)

    raw = cursor.dump()
    restored = InboxCursor.load(raw)
    assert restored == cursor
    assert restored.files["later.xlsx"][2] is None
    assert json.loads(raw)["seen_hashes"] == cursor.seen_hashes
    # a restored cursor behaves exactly like the live one
    assert scan_inbox(tmp_path, restored) == scan_inbox(tmp_path, cursor)


@pytest.mark.parametrize("raw", [None, ""])
def test_empty_cursor_loads_as_fresh(raw):
    assert InboxCursor.load(raw) == InboxCursor()


def test_cursor_keeps_only_the_last_5000_hashes():
    cursor = InboxCursor(seen_hashes=[f"h{i}" for i in range(6000)])
    restored = InboxCursor.load(cursor.dump())
    assert len(restored.seen_hashes) == 5000
    assert restored.seen_hashes[0] == "h1000" and restored.seen_hashes[-1] == "h5999"


def test_newest_workbook_by_mtime_ignoring_lock_files(tmp_path):
    put(tmp_path / "old.xlsx", b"old", T0)
    newest = put(tmp_path / "new.xlsm", b"new", T0 + 10**9)
    put(tmp_path / "~$new.xlsm", b"lock", T0 + 5 * 10**9)
    put(tmp_path / "notes.txt", b"notes", T0 + 9 * 10**9)
    assert newest_workbook(tmp_path) == newest


def test_newest_workbook_on_an_empty_inbox_names_the_inbox(tmp_path):
    put(tmp_path / "~$locked.xlsx", b"lock")
    with pytest.raises(FileNotFoundError, match="no workbook") as info:
        newest_workbook(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError):
        newest_workbook(tmp_path / "missing")


def test_a_redropped_workbook_is_reported_as_known_when_asked(tmp_path):
    """The sensor decides whether known content runs again (it must when it is not published)."""
    path = put(tmp_path / "snap.xlsx", b"export")
    _, cursor = scan_inbox(tmp_path, InboxCursor())
    ready, cursor = scan_inbox(tmp_path, cursor, include_known=True)
    assert [r.known for r in ready] == [False]
    put(path, b"export", T0 + 60 * 10**9)  # copied onto the share again: same bytes, new mtime
    ready, cursor = scan_inbox(tmp_path, cursor, include_known=True)
    assert ready == []
    ready, cursor = scan_inbox(tmp_path, cursor, include_known=True)
    assert ready == [ReadyWorkbook(str(path), sha(b"export"), known=True)]
    assert ready[0].mtime_ns == T0 + 60 * 10**9
    assert cursor.seen_hashes == [sha(b"export")]

"""Inbox scanning for the sensor: cheap stat calls, hashing only files that are new and stable.

A workbook is ready once its size and mtime are unchanged across two scans (a file
still being copied onto the share keeps growing). Office lock files (`~$x.xlsx`)
and temp files are never candidates. The cursor remembers the content hash seen
under each name, so a renamed copy of known content does not run again while new
content under an old name does.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")


def is_candidate(name: str) -> bool:
    lower = name.lower()
    if name.startswith(("~$", ".", "~")) or lower.endswith((".tmp", ".part", ".crdownload")):
        return False
    return lower.endswith(WORKBOOK_SUFFIXES)


def list_workbooks(inbox: Path) -> list[os.DirEntry]:
    if not inbox.is_dir():
        return []
    with os.scandir(inbox) as entries:
        return [e for e in entries if e.is_file() and is_candidate(e.name)]


def newest_workbook(inbox: Path) -> Path:
    entries = list_workbooks(inbox)
    if not entries:
        raise FileNotFoundError(f"no workbook (.xlsx/.xlsm) in the inbox {inbox}")
    return Path(max(entries, key=lambda e: e.stat().st_mtime_ns).path)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class InboxCursor:
    # name -> [size, mtime_ns, sha256 or None]; sha256 set once the file was handed to a run
    files: dict[str, list] = field(default_factory=dict)
    seen_hashes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, raw: str | None) -> InboxCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(files=data.get("files", {}), seen_hashes=data.get("seen_hashes", []))

    def dump(self) -> str:
        return json.dumps({"files": self.files, "seen_hashes": self.seen_hashes[-5000:]}, separators=(",", ":"))


@dataclass(frozen=True)
class ReadyWorkbook:
    path: str
    sha256: str
    known: bool = False  # content seen before, dropped again (copied anew, touched, renamed)
    mtime_ns: int = field(default=0, compare=False)


def scan_inbox(
    inbox: Path, cursor: InboxCursor, include_known: bool = False
) -> tuple[list[ReadyWorkbook], InboxCursor]:
    """One sensor tick: which workbooks are ready to ingest now, and the next cursor.

    With `include_known`, a stable file whose content was seen before is returned too
    (`known=True`): the caller decides whether a re-drop must run again (it must when
    that content is not what is published, e.g. after a run that died)."""
    ready: list[ReadyWorkbook] = []
    next_files: dict[str, list] = {}
    seen = set(cursor.seen_hashes)
    for entry in sorted(list_workbooks(inbox), key=lambda e: e.name):
        stat = entry.stat()
        previous = cursor.files.get(entry.name)
        signature = [stat.st_size, stat.st_mtime_ns]
        if previous is None or previous[:2] != signature:
            next_files[entry.name] = [*signature, None]  # new or still changing: wait one more tick
            continue
        if previous[2] is not None:
            next_files[entry.name] = previous  # already handled, unchanged
            continue
        digest = file_sha256(entry.path)
        next_files[entry.name] = [*signature, digest]
        if digest not in seen:
            seen.add(digest)
            ready.append(ReadyWorkbook(entry.path, digest, mtime_ns=stat.st_mtime_ns))
        elif include_known:
            ready.append(ReadyWorkbook(entry.path, digest, known=True, mtime_ns=stat.st_mtime_ns))
    return ready, InboxCursor(
        files=next_files, seen_hashes=[*cursor.seen_hashes, *[r.sha256 for r in ready if not r.known]]
    )

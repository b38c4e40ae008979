"""Files that readers never see half written.

A snapshot's parquet files are read by the sheet assets of one run while another run of
the same export (the sensor and a CLI ingest, two CLI ingests) may be writing them; an
in-place write lets the reader open a truncated file. Writing beside the target and
renaming over it (atomic on one file system) leaves readers the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` in one rename,
    on error it is removed and `target` is left as it was. Its name starts with a dot and
    ends in `.partial`, so a folder watcher matching `*.xlsx` or `*.parquet` skips it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)

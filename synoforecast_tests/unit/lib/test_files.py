"""lib/files.atomic_path: readers see the old file or the new one, never a part."""

import pytest

from synoforecast.lib.files import atomic_path


def test_the_target_keeps_its_old_content_until_the_write_completes(tmp_path):
    target = tmp_path / "svr_rm.parquet"
    target.write_bytes(b"old")
    with atomic_path(target) as partial:
        partial.write_bytes(b"new, being written")
        assert target.read_bytes() == b"old"
        assert partial.parent == target.parent and partial.name.startswith(".svr_rm.parquet.")
    assert target.read_bytes() == b"new, being written"
    assert [p.name for p in tmp_path.iterdir()] == ["svr_rm.parquet"]


def test_a_failed_write_leaves_the_target_and_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "manifest.json"
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_text("half")
        raise RuntimeError("disk full")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []

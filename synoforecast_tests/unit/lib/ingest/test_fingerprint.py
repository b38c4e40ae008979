"""Project-defined content digests: documented bytes, stable, order-independent."""

import datetime as dt
import hashlib

import polars as pl

from synoforecast.lib.ingest.fingerprint import EMPTY, canonical_rows, frame_digest, grouped_digests


def test_canonical_text_of_each_type():
    frame = pl.DataFrame(
        {"d": [dt.date(2025, 7, 14), None], "t": ["a\\b", "x"], "i": [3, -1], "m": [1234.5, 0.1], "b": [True, False]}
    )
    assert canonical_rows(frame, frame.columns).to_list() == [
        "2025-07-14\x1fa\\\\b\x1f3\x1f123450\x1ft",
        "\\N\x1fx\x1f-1\x1f10\x1ff",
    ]


def test_digest_is_sha256_of_the_sorted_lines_and_ignores_row_order():
    frame = pl.DataFrame({"k": ["b", "a"], "v": [2, 1]})
    expected = hashlib.sha256(b"a\x1f1\nb\x1f2").hexdigest()[:32]
    assert frame_digest(frame, ["k", "v"]) == expected == frame_digest(frame.reverse(), ["k", "v"])
    assert frame_digest(frame.head(0), ["k", "v"]) == EMPTY


def test_grouped_digests_by_quarter():
    frame = pl.DataFrame({"q": [dt.date(2025, 1, 1), dt.date(2025, 4, 1), dt.date(2025, 1, 1)], "v": [1, 2, 3]})
    out = grouped_digests(frame, "q", ["v"])
    assert out == {
        "2025-01-01": frame_digest(pl.DataFrame({"v": [3, 1]}), ["v"]),
        "2025-04-01": frame_digest(pl.DataFrame({"v": [2]}), ["v"]),
    }

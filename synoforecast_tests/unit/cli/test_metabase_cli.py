"""`synoforecast metabase provision` against the stand-in: a report per object, no write the
second time, one-line errors naming what to fix."""

from __future__ import annotations

import json
import os

import pytest

from synoforecast.cli.main import main
from synoforecast_tests.support.http_standin import StandIn

KEY = "mb_SecretKey-1234567890"


@pytest.fixture
def mb(monkeypatch):
    with StandIn(api_key=KEY) as s:
        for name in list(os.environ):
            if name.startswith("METABASE_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("METABASE_URL", s.url)
        monkeypatch.setenv("METABASE_API_KEY", KEY)
        monkeypatch.setenv("METABASE_DATABASE_ID", "2")
        monkeypatch.setenv("METABASE_HEALTH_WAIT_S", "0.01")
        monkeypatch.setenv("METABASE_HEALTH_ATTEMPTS", "2")
        monkeypatch.setenv("METABASE_BACKOFF_S", "0.01")
        yield s


def test_provision_then_nothing_to_do(mb, capsys):
    assert main(["metabase", "provision"]) == 0
    out = capsys.readouterr().out
    assert "forecast_vs_actual" in out and "created" in out and "6 object(s) changed" in out
    mb.reset()
    assert main(["metabase", "provision", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == 0 and set(report["objects"].values()) == {"unchanged"}
    assert not [c for c in mb.calls() if not c.startswith("GET ")]


def test_errors_are_one_line(mb, capsys, monkeypatch):
    monkeypatch.setenv("METABASE_API_KEY", "wrong-key-123456")
    assert main(["metabase", "provision"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Metabase rejected the API key (401)") and err.count("\n") == 1
    assert "wrong-key-123456" not in err
    monkeypatch.delenv("METABASE_DATABASE_ID")
    monkeypatch.setenv("METABASE_API_KEY", KEY)
    assert main(["metabase", "provision"]) == 1
    assert "METABASE_DATABASE_ID" in capsys.readouterr().err
    monkeypatch.setenv("METABASE_DATABASE_ID", "two")
    assert main(["metabase", "provision"]) == 1
    assert "METABASE_DATABASE_ID" in capsys.readouterr().err

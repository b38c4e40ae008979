"""Warehouse URL parsing (for dbt's environment) (redaction: unit/lib/test_redaction.py)."""

from __future__ import annotations

import pytest

from synoforecast.lib.warehouse.connection import ConnectionParts, WarehouseError, parse_url


def test_tcp_url_with_password():
    parts = parse_url("postgresql://forecast:s3cret@db.internal:5433/sales")
    assert parts == ConnectionParts(host="db.internal", port=5433, user="forecast", password="s3cret", dbname="sales")
    assert parts.as_env() == {
        "SYNOFORECAST_DBT_HOST": "db.internal",
        "SYNOFORECAST_DBT_PORT": "5433",
        "SYNOFORECAST_DBT_USER": "forecast",
        "SYNOFORECAST_DBT_PASSWORD": "s3cret",
        "SYNOFORECAST_DBT_DBNAME": "sales",
    }


def test_percent_encoded_password_is_decoded():
    parts = parse_url("postgresql://forecast:p%40ss%3Aw0rd@db:5432/sales")
    assert parts.password == "p@ss:w0rd"


def test_socket_form_of_the_embedded_server():
    parts = parse_url("postgresql://postgres:@/postgres?host=/tmp/x")
    assert parts == ConnectionParts(host="/tmp/x", port=5432, user="postgres", password="", dbname="postgres")


def test_socket_form_with_encoded_host_and_port_in_query():
    parts = parse_url("postgresql://postgres:@/sales?host=%2Fvar%2Frun%2Fpostgresql&port=5499")
    assert (parts.host, parts.port, parts.dbname) == ("/var/run/postgresql", 5499, "sales")


@pytest.mark.parametrize("url", ["postgres://u@h/db", "postgresql+psycopg://u@h/db"])
def test_accepted_scheme_spellings(url):
    assert parse_url(url).host == "h"


def test_defaults_for_a_minimal_url():
    assert parse_url("postgresql://") == ConnectionParts("localhost", 5432, "postgres", "", "postgres")


@pytest.mark.parametrize("url, scheme", [("mysql://u:p@h/db", "mysql"), ("http://h/db", "http"), ("h:5432/db", "h")])
def test_other_schemes_are_refused(url, scheme):
    with pytest.raises(WarehouseError, match=f"must start with postgresql://, got '{scheme}://'"):
        parse_url(url)

"""Whether two warehouses (or one before and after) hold the same rows: a print per table."""

from __future__ import annotations

import psycopg

# columns that differ between two runs publishing the same rows
RUN_SPECIFIC = ("run_id", "created_at", "snapshot_id", "published_at", "recorded_at")


def table_prints(url: str, schemas, ignored=(), *, views: bool = False) -> dict[str, tuple[int, str]]:
    """{"schema.table": (rows, md5 of its rows as text, sorted)} for every table of `schemas`
    (and view, with `views`), leaving out the `ignored` columns: equal prints, equal rows."""
    kinds = ["BASE TABLE", "VIEW"] if views else ["BASE TABLE"]
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s) and table_type = any(%s) order by 1, 2",
            (list(schemas), kinds),
        ).fetchall()
        out = {}
        for schema, table in tables:
            columns = conn.execute(
                "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
                "order by ordinal_position",
                (schema, table),
            ).fetchall()
            kept = ", ".join(f'"{c}"' for (c,) in columns if c not in ignored)
            out[f"{schema}.{table}"] = tuple(
                conn.execute(
                    f"select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') "
                    f'from (select {kept} from "{schema}"."{table}") t'
                ).fetchone()
            )
    return out

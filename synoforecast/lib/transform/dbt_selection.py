"""Which dbt nodes a run must build: those downstream of a raw table whose content changed
since dbt last built from it (pure: the manifest, ops.partition_state rows and ops.dbt_inputs
in, names out).

A weekly export usually changes one sheet's newest quarter; its other sheets and the
reference tables are rewritten with the same content. Rebuilding their staging and marts
(and running their tests) would reproduce the same rows, so the run builds only the
descendants of the changed sources and reports the others unchanged. A project never built
with its current digest builds every node.

What dbt built from is recorded per raw table and quarter (``ops.dbt_inputs``, scope
``<table>|<quarter key>``) as the raw partition's fingerprint combined with the dbt project's
digest (its sources and vars), only after a successful build. So a run that died between
the sheets and dbt, an edited model, other vars or a quarter never built all read as
changed: the comparison is by content, never by time or by which run wrote what.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from synoforecast.lib.ingest.fingerprint import combine

PROJECT_SCOPE = "project"  # ops.dbt_inputs row: the project digest every node was last built with
SOURCE_SCHEMA = "raw"
BUILT_RESOURCES = ("model", "seed", "snapshot")  # nodes dbt builds (tests follow their models)


def input_scope(table: str, key: str) -> str:
    return f"{table}|{key}"


def built_fingerprint(raw_fingerprint: str, project_digest: str) -> str:
    """What dbt's build from a raw partition is recorded as: its content and the project."""
    return combine([raw_fingerprint, project_digest])


def source_tables(manifest: Mapping) -> dict[str, str]:
    """raw table name -> the dbt source's unique id (schema `raw` only: the running quarter's
    `raw_running` views are rebuilt only with the project)."""
    return {props["name"]: uid for uid, props in manifest["sources"].items() if props["source_name"] == SOURCE_SCHEMA}


def project_built(built: Mapping[str, str], project_digest: str) -> bool:
    """Every node was built with this project (sources, vars, dbt release): the nodes that read
    no raw table (seeds, the running quarter's views) need no build; otherwise all do.
    `built`: ops.dbt_inputs, scope -> fingerprint."""
    return built.get(PROJECT_SCOPE) == project_digest


def _raw(state: Iterable[tuple[str, str, str, str]]) -> dict[tuple[str, str], str]:
    """(table, quarter key) -> fingerprint of the raw partitions in ops.partition_state rows
    (target, scope, partition_key, fingerprint); a raw partition's scope is its quarter key."""
    prefix = f"{SOURCE_SCHEMA}."
    return {(target.removeprefix(prefix), scope): fp for target, scope, _key, fp in state if target.startswith(prefix)}


def changed_tables(
    tables: Iterable[str],
    keys: Sequence[str],
    state: Iterable[tuple[str, str, str, str]],
    built: Mapping[str, str],
    project_digest: str,
) -> set[str]:
    """Raw tables with a quarter in `keys` whose content dbt has not built from with this
    project (`state`: ops.partition_state rows; `built`: ops.dbt_inputs, scope -> fingerprint)."""
    raw = _raw(state)

    def current(table: str, key: str) -> bool:
        held = raw.get((table, key))
        return held is not None and built.get(input_scope(table, key)) == built_fingerprint(held, project_digest)

    return {table for table in tables if not all(current(table, key) for key in keys)}


def built_records(
    tables: Iterable[str], keys: Sequence[str], state: Iterable[tuple[str, str, str, str]], project_digest: str
) -> dict[str, str]:
    """scope -> fingerprint to record for `tables` after a successful build, with the project's
    own row: what their raw partitions hold now (a partition raw never wrote is left out)."""
    raw = _raw(state)
    out = {
        input_scope(table, key): built_fingerprint(raw[(table, key)], project_digest)
        for table in sorted(tables)
        for key in keys
        if (table, key) in raw
    }
    return {**out, PROJECT_SCOPE: project_digest}


@dataclass(frozen=True)
class Plan:
    build: frozenset[str]  # unique ids of the models, seeds and snapshots to build
    skip: frozenset[str]  # unique ids left as they are: none of them reads a node that is built

    def exclude_args(self, manifest: Mapping) -> list[str]:
        """`--exclude` for dbt: the skipped nodes by name (tests on them drop out with them)."""
        if not self.skip:
            return []
        return ["--exclude", " ".join(sorted(manifest["nodes"][uid]["name"] for uid in self.skip))]


def in_build_order(manifest: Mapping, uids: Iterable[str]) -> list[str]:
    """`uids` parents first (Dagster takes a multi-asset's outputs in topological order)."""
    wanted, parents, out, done = set(uids), manifest["parent_map"], [], set()

    def visit(uid: str) -> None:
        if uid in done:
            return
        done.add(uid)
        for parent in sorted(parents.get(uid, [])):
            visit(parent)
        if uid in wanted:
            out.append(uid)

    for uid in sorted(wanted):
        visit(uid)
    return out


def plan(manifest: Mapping, changed: set[str] | None) -> Plan:
    """The nodes downstream of the `changed` raw tables' sources; `None`: every node."""
    nodes = {uid for uid, props in manifest["nodes"].items() if props["resource_type"] in BUILT_RESOURCES}
    if changed is None:
        return Plan(frozenset(nodes), frozenset())
    sources = source_tables(manifest)
    children = manifest["child_map"]
    build: set[str] = set()
    todo = [sources[t] for t in changed if t in sources]
    while todo:
        for child in children.get(todo.pop(), []):
            if child in nodes and child not in build:
                build.add(child)
                todo.append(child)
    return Plan(frozenset(build), frozenset(nodes - build))

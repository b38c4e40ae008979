"""The dbt manifest is parsed only when the project's sources changed (digest, not mtime),
and an installed, read-only project with a stale manifest is an error, never a parse:
what lets the image ship its manifest in the wheel (deploy/Dockerfile)."""

from __future__ import annotations

import os
import shutil

import pytest
from dagster_dbt import DbtProject

from synoforecast.defs.transform.project import DIGEST_FILE, ensure_manifest, sources_digest
from synoforecast.settings import DBT_PROJECT_DIR


@pytest.fixture
def project(tmp_path) -> DbtProject:
    folder = tmp_path / "synoforecast_dbt"
    shutil.copytree(DBT_PROJECT_DIR, folder, ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
    return DbtProject(project_dir=folder, profiles_dir=folder)


def test_parsed_once_then_only_when_a_source_changes(project):
    manifest = ensure_manifest(project)
    digest = manifest.with_name(DIGEST_FILE).read_text().strip()
    assert digest == sources_digest(project.project_dir)
    first = manifest.stat().st_mtime_ns

    os.utime(project.project_dir / "dbt_project.yml")  # touched, same content: no parse
    assert ensure_manifest(project).stat().st_mtime_ns == first

    model = next((project.project_dir / "models" / "marts").glob("*.sql"))
    model.write_text(model.read_text() + "\n-- edited\n")
    assert sources_digest(project.project_dir) != digest
    ensure_manifest(project)
    assert manifest.stat().st_mtime_ns != first
    assert manifest.with_name(DIGEST_FILE).read_text().strip() == sources_digest(project.project_dir)


def test_an_installed_project_with_a_stale_manifest_refuses_to_parse(tmp_path):
    folder = tmp_path / "lib" / "python3.11" / "site-packages" / "synoforecast_dbt"
    shutil.copytree(DBT_PROJECT_DIR, folder, ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
    project = DbtProject(project_dir=folder, profiles_dir=folder)
    with pytest.raises(RuntimeError, match="installed package: rebuild"):
        ensure_manifest(project)  # no manifest at all
    assert not (folder / "target" / "manifest.json").exists()

"""The dbt project handle, and a parsed manifest whenever the project changed."""


import os
import subprocess
from pathlib import Path

from dagster_dbt import DbtProject

from synoforecast.defs.resources import dbt_executable
from synoforecast.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_mtime(project_dir: Path) -> float:
    paths = [project_dir / "dbt_project.yml"]
    for folder in ("models", "seeds", "macros", "tests"):
        paths += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """`dbt parse` when the manifest is missing or older than the project's files.

    dagster-dbt's `prepare_if_dev` only runs under `dagster dev`; the CLI, tests and
    the image load the definitions too, so they get the same guarantee here.
    """
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(project.project_dir):
        return manifest
    result = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--project-dir", str(project.project_dir),
         "--profiles-dir", str(project.profiles_dir), "--target-path", str(project.target_path)],
        capture_output=True, text=True, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    if result.returncode != 0 or not manifest.exists():
        raise RuntimeError(f"dbt parse failed in {project.project_dir}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return manifest

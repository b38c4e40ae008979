"""The dbt project handle, and a parsed manifest whenever the project's sources changed.

The manifest lives at ``synoforecast_dbt/target/manifest.json`` beside
``target/sources.sha256``, the digest of the sources it was parsed from. In a checkout
(editable install) the first load after a model changed parses again. A wheel, and so
the image, ships both files (``PREPARE_COMMAND`` before the wheel is built, as
deploy/Dockerfile does): the digests match and nothing is parsed
at load. An installed project (site-packages, or read-only) whose manifest does not
match its sources is an error, never a parse.
"""

import hashlib
import os
import subprocess
from pathlib import Path

from dagster_dbt import DbtProject

from synoforecast.defs.resources import dbt_executable
from synoforecast.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

SOURCE_FOLDERS = ("models", "seeds", "macros", "tests")
DIGEST_FILE = "sources.sha256"
# run from a checkout before `pip wheel` / `pip install .` so the wheel carries the manifest
PREPARE_COMMAND = 'python -c "from synoforecast.defs.transform.project import ensure_manifest; ensure_manifest()"'


def sources_digest(project_dir: Path) -> str:
    """sha256 over the relative path and content of every file dbt parses."""
    paths = [project_dir / "dbt_project.yml"]
    for folder in SOURCE_FOLDERS:
        paths += [
            p
            for p in (project_dir / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
        ]
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p.exists()):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def installed(project_dir: Path) -> bool:
    """The project lies in an installed package (a wheel), not in a checkout: never parse there."""
    return any(part in ("site-packages", "dist-packages") for part in project_dir.parts)


def ensure_manifest(project: DbtProject = dbt_project) -> Path:
    """The project's manifest; `dbt parse` first when it is missing or its sources changed.

    dagster-dbt's `prepare_if_dev` only runs under `dagster dev`; the CLI, tests and
    the image load the definitions too, so they get the same guarantee here.
    """
    manifest = project.manifest_path
    digest_file = manifest.with_name(DIGEST_FILE)
    current = sources_digest(project.project_dir)
    if manifest.exists() and digest_file.exists() and digest_file.read_text().strip() == current:
        return manifest
    target = project.project_dir / project.target_path
    if (
        installed(project.project_dir)
        or not os.access(project.project_dir, os.W_OK)
        or (target.exists() and not os.access(target, os.W_OK))
    ):
        raise RuntimeError(
            f"the dbt manifest {manifest} is missing or was parsed from other sources, and "
            f"{project.project_dir} is an installed package: rebuild the package (or image), which runs "
            f"`{PREPARE_COMMAND}` before the wheel is built"
        )
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(project.project_dir),
            "--profiles-dir",
            str(project.profiles_dir),
            "--target-path",
            str(target),
            "--log-path",
            str(target),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )
    if result.returncode != 0 or not manifest.exists():
        raise RuntimeError(
            f"dbt parse failed in {project.project_dir}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    digest_file.write_text(current + "\n")
    return manifest

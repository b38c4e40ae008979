"""`synoforecast dbt-docs`: which dbt docs page to serve, and building one (lib/transform/dbt_docs.py).

A release ships the page inside the package, beside the manifest (deploy/Dockerfile generates
it before the wheel is built): `serve` serves that one and never runs dbt. A source checkout
ships none, and its models change: there the page is generated into <data>/cache/dbt-docs,
again whenever the manifest is newer than the page (ensure_manifest parses after a change).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synoforecast.lib.transform.dbt_docs import PAGE
from synoforecast.settings import CHECKOUT_DIR, DBT_PROJECT_DIR

SHIPPED = DBT_PROJECT_DIR / "target" / "docs" / PAGE  # package data (pyproject.toml)


def local_site(data_dir: Path) -> Path:
    """Where a checkout (or a package without the page) keeps the page it generated."""
    return data_dir / "cache" / "dbt-docs"


def build(out: Path) -> Path:
    """Generate the site into `out` from the project's manifest (parsed first when its sources
    changed); the page's path. Raises RuntimeError (DbtDocsError, or ensure_manifest's)."""
    from synoforecast.defs.resources import dbt_executable
    from synoforecast.defs.transform.project import dbt_project, ensure_manifest
    from synoforecast.lib.transform.dbt_docs import build_docs_site

    manifest = ensure_manifest()
    return build_docs_site(dbt_project.project_dir, manifest, out, dbt=dbt_executable())


def page_to_serve(data_dir: Path, progress: Callable[[str], None]) -> Path:
    """The shipped page in an installed package; otherwise the data folder's, generated first
    when it is missing or older than the manifest."""
    if CHECKOUT_DIR is None and SHIPPED.is_file():
        return SHIPPED
    from synoforecast.defs.transform.project import ensure_manifest

    manifest = ensure_manifest()
    page = local_site(data_dir) / PAGE
    if page.is_file() and page.stat().st_mtime >= manifest.stat().st_mtime:
        return page
    progress(f"generating the dbt docs site into {page.parent} (offline, about 10 s)")
    return build(page.parent)

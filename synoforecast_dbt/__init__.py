"""The synoforecast dbt project, importable so it ships inside the wheel as package data.

The folder stays a plain dbt project (``dbt parse --project-dir synoforecast_dbt`` works
from a checkout); this module only tells the platform where it is installed, which is
this folder in an editable install and ``site-packages/synoforecast_dbt`` from a wheel.
The wheel also carries the parsed manifest (``target/manifest.json``) and the digest of
the sources it was parsed from (``target/sources.sha256``): see
``synoforecast/defs/transform/project.py``.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent

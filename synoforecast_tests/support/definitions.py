"""Reload the code location in a test, as Dagster does when it (re)loads one.

`build_resources()` binds each METABASE_* / *_WEBHOOK_URL / SMTP_* secret /
SYNOFORECAST_WAREHOUSE_URL that is set at load time as an `EnvVar` (an unset one is left
out: Dagster fails a run on an unset EnvVar). A test that sets or removes those variables after `synoforecast.definitions`
was imported reloads it, and reloads it again once the variables are restored, so the
modules after it do not see a configuration that is gone."""

import importlib
import sys


def reload_definitions():
    sys.modules.pop("synoforecast.definitions", None)
    return importlib.import_module("synoforecast.definitions")


def sensor_context(instance, **kwargs):
    """A sensor tick's context with the resources the sensors receive, as the daemon gives them."""
    import dagster as dg

    from synoforecast.defs.resources import build_resources

    return dg.build_sensor_context(instance=instance, resources=build_resources(), **kwargs)

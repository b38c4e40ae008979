"""The `synoforecast` command: its entry point, the in-process runner and `doctor`."""

"""Prefect flows, tasks, the CLI and tracking: thin glue over plain functions."""

from flows import _env

_env.apply()

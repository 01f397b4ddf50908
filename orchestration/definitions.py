"""The one Dagster Definitions of nextbuy: `dagster dev` (workspace.yaml) and `nextbuy`
load this module.

The definitions are gathered from `orchestration/defs/`: every asset, check, job, sensor
and schedule a domain module declares at module level is found by
`dg.load_from_defs_folder` (pyproject.toml's [tool.dg] names the folder), so a
new sensor or schedule of a domain needs no edit here. Only the resources, which depend
on the environment (orchestration/environment.py), are added in this file.

Lineage: raw.* (sources) -> dbt staging/intermediate/marts (features) -> GX checks
(quality) -> candidate_model -> champion_model (training) -> ml.customer_scores ->
campaign_audience (scoring).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.environment import PROJECT_ROOT, disable_telemetry

disable_telemetry()

from orchestration.resources import build_resources  # noqa: E402


def build_definitions(warehouse: Path | None = None) -> dg.Definitions:
    """Definitions for the current environment (NEXTBUY_ENV, NEXTBUY_HOME); ``warehouse``
    replaces the environment's DuckDB file (`--warehouse` of the command line)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=PROJECT_ROOT),
        dg.Definitions(resources=build_resources(warehouse=warehouse)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()

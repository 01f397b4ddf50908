"""The one Dagster Definitions of nextbuy: `dagster dev` (workspace.yaml) and `nextbuy`
load this module.

Lineage: raw.* (sources) -> dbt staging/intermediate/marts (features) -> GX checks
(quality) -> candidate_model -> champion_model (training) -> ml.customer_scores ->
campaign_audience (scoring).
"""

from __future__ import annotations

import dagster as dg

from orchestration.environment import disable_telemetry

disable_telemetry()

from orchestration.defs.features.assets import build_dbt_assets  # noqa: E402
from orchestration.defs.quality.checks import quality_checks  # noqa: E402
from orchestration.defs.scoring.assets import customer_scores  # noqa: E402
from orchestration.defs.sources.assets import raw_table_specs  # noqa: E402
from orchestration.defs.training.assets import candidate_model, champion_model  # noqa: E402
from orchestration.resources import build_resources  # noqa: E402

# Everything from raw to the campaign audience, in dependency order.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="Build the features, validate, train, gate, score and build the audience.",
)


def build_definitions() -> dg.Definitions:
    """Definitions for the current environment (NEXTBUY_ENV, NEXTBUY_HOME)."""
    return dg.Definitions(
        assets=[
            *raw_table_specs(),
            *build_dbt_assets(),
            candidate_model,
            champion_model,
            customer_scores,
        ],
        asset_checks=quality_checks(),
        jobs=[pipeline_job],
        resources=build_resources(),
    )


defs = build_definitions()

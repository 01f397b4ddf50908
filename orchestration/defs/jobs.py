"""Jobs: which assets run together. The CLI runs these same jobs in process."""

import dagster as dg

from orchestration.defs.features.assets import feature_models

# Everything from raw to the campaign audience, in dependency order.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="Build the features, validate, train, gate, score and build the audience.",
)

# `nextbuy features`: the dbt feature build with its dbt tests and the marts' GX checks.
features_job = dg.define_asset_job(
    "features",
    selection=dg.AssetSelection.assets(feature_models),
    description="Build and test the dbt feature models (incrementally) and validate the marts.",
)

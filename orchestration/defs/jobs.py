"""Jobs: which assets run together. The command line runs these same jobs in process."""

import dagster as dg

from orchestration.defs.features.assets import TRAINING_EXAMPLES_KEY, feature_models

_TRAINING = dg.AssetSelection.assets("candidate_model", "champion_model")

# Everything from raw to the campaign audience, in dependency order: `nextbuy pipeline`.
pipeline_job = dg.define_asset_job(
    "pipeline",
    selection=dg.AssetSelection.all(),
    description="Build the features, validate, train, gate, score and build the audience.",
)

# The sensor's job: new partitions in, fresh scores and audience out, no training.
daily_job = dg.define_asset_job(
    "daily",
    selection=dg.AssetSelection.all() - _TRAINING,
    description=(
        "Incremental dbt build of the changed partitions, the blocking checks, scores of the "
        "new as-of date by the current champion, the campaign audience."
    ),
)

# Weekly (and on alert): train, gate, and rescore with whatever the gate leaves champion.
# The blocking checks of training_examples run first, so a candidate never learns from
# examples that fail them, even when the features were built by an earlier run.
retrain_job = dg.define_asset_job(
    "retrain",
    selection=(
        _TRAINING.downstream() - dg.AssetSelection.assets(feature_models)
        | dg.AssetSelection.checks_for_assets(TRAINING_EXAMPLES_KEY)
    ),
    description="Train a candidate, gate it against the champion, and rescore.",
)

# `nextbuy features`: the dbt feature build with its dbt tests and the marts' GX checks.
features_job = dg.define_asset_job(
    "features",
    selection=dg.AssetSelection.assets(feature_models),
    description="Build and test the dbt feature models (incrementally) and validate the marts.",
)

"""Jobs: which assets run together. The command line runs these same jobs in process.

Each job has one partitions definition (Dagster runs one partition key or range of one
definition at a time): the feature build runs over raw order_items day partitions, the
rest over as-of dates. The daily loop is therefore two runs, chained by sensors (see
orchestration/defs/features/sensors.py): `features` for the new days, then `daily` for
the date they make scorable.
"""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.defs.features.assets import (
    TRAINING_EXAMPLES_KEY,
    feature_models,
    scoring_models,
)
from orchestration.defs.monitoring.online import ONLINE_PREDICTIONS_KEY
from orchestration.defs.quality.checks import check_name

_TRAINING = dg.AssetSelection.assets("candidate_model", "champion_model")
_FEATURES = dg.AssetSelection.assets(feature_models)
_ONLINE = dg.AssetSelection.assets(
    ONLINE_PREDICTIONS_KEY, get_asset_key_for_model([scoring_models], "stg_ml__online_predictions")
)

# `nextbuy features` and the first half of the daily loop: the dbt feature build of the
# new or changed day partitions, its dbt tests and the marts' GX checks.
features_job = dg.define_asset_job(
    "features",
    selection=_FEATURES,
    description=(
        "Build and test the dbt feature models for a range of raw order_items day "
        "partitions (incrementally) and validate the marts."
    ),
)

# The second half: fresh scores and audience for the new as-of date, no training.
daily_job = dg.define_asset_job(
    "daily",
    selection=dg.AssetSelection.all() - _TRAINING - _FEATURES,
    description=(
        "Scores of one as-of date by the current champion, the campaign audience of that "
        "date, and its monitoring."
    ),
)

# Weekly (and on alert): train, gate, and rescore with whatever the gate leaves champion.
# The GX check of training_examples runs first, so a candidate never learns from examples
# that fail it, even when the features were built by an earlier run. (Only the GX check:
# the dbt tests are steps of the dbt build itself, which this job does not run.)
retrain_job = dg.define_asset_job(
    "retrain",
    selection=(
        _TRAINING.downstream() - _FEATURES
        # score_outcomes, downstream of the scores, also judges the online predictions:
        # the server's log is brought in and staged in the same run.
        | _ONLINE
        | dg.AssetSelection.checks(
            dg.AssetCheckKey(TRAINING_EXAMPLES_KEY, check_name("training_examples"))
        )
    ),
    description=(
        "Train a candidate, gate it against the champion, and rescore the as-of date "
        "with the champion the gate leaves."
    ),
)

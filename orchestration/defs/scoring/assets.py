"""customer_scores: the champion scores customer_features into ml.customer_scores."""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from orchestration.defs.features.assets import CUSTOMER_FEATURES_KEY
from orchestration.defs.quality.checks import check_name, check_result
from orchestration.environment import warehouse_kind
from orchestration.partitions import AS_OF_DATES
from orchestration.resources import ParametersResource, RegistryResource, Warehouse

CUSTOMER_FEATURES = "marts.customer_features"
SCORES_TABLE = "ml.customer_scores"
SCORES_KEY = dg.AssetKey(["ml", "customer_scores"])
SUITE = "customer_scores"


def deciles(scores: np.ndarray, bins: int) -> np.ndarray:
    """1 for the highest-scoring tenth (with bins=10), ``bins`` for the lowest.

    Ranks break ties by position, so every bin holds the same number of customers
    (+-1) even when many scores are equal (a rule baseline gives whole groups one score).
    """
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(len(scores))
    return (ranks * bins // max(len(scores), 1) + 1).astype(np.int64)


def features_as_of(features: pd.DataFrame) -> dt.date:
    """The one as-of date of customer_features rows."""
    dates = sorted(set(pd.to_datetime(features["as_of"]).dt.date))
    if len(dates) != 1:
        raise ValueError(f"{CUSTOMER_FEATURES} holds {len(dates)} as_of dates, not one")
    result: dt.date = dates[0]
    return result


@dg.asset(
    key=SCORES_KEY,
    group_name="scoring",
    partitions_def=AS_OF_DATES,
    deps=[CUSTOMER_FEATURES_KEY, dg.AssetKey("champion_model")],
    kinds={warehouse_kind(), "mlflow"},
    check_specs=[
        dg.AssetCheckSpec(
            check_name(SUITE),
            asset=SCORES_KEY,
            blocking=True,
            description=(
                f"Great Expectations suite expectations/{SUITE}.json on the new scores, "
                "staged: they are published only when it passes."
            ),
        )
    ],
)
def customer_scores(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult]:  # type: ignore[type-arg]
    """Every customer of customer_features scored by the model the registry's `champion`
    alias points at (read at run time, so a rollback takes effect at the next scoring),
    written to ml.customer_scores: staged, validated with the customer_scores suite, then
    the rows of that as_of date replaced in one transaction, so a re-run never
    duplicates and a failure (of the model or of the suite) leaves the old rows.

    The partition is the as-of date; customer_features must be computed as of it (the
    feature build of the same day), since it holds one date only."""
    params = parameters.load()
    reg = registry.open(params.registry)
    champion = reg.champion()
    if champion is None:
        raise RuntimeError(
            f"the registry has no '{params.registry.champion_alias}' alias for "
            f"{params.registry.model_name}: materialise champion_model first"
        )
    started = time.perf_counter()
    features = warehouse.read_table(CUSTOMER_FEATURES, order_by="customer_id")
    if features.empty:
        raise ValueError(f"{CUSTOMER_FEATURES} is empty: there is no customer to score")
    as_of = features_as_of(features)
    if as_of.isoformat() != context.partition_key:
        raise ValueError(
            f"{CUSTOMER_FEATURES} is computed as of {as_of}, not as of the partition "
            f"{context.partition_key}: build the features as of that date first "
            f"(`nextbuy features --as-of {context.partition_key}`)"
        )
    score = np.asarray(reg.load_scorer(champion).predict(features), dtype=np.float64).ravel()
    if len(score) != len(features) or not np.all(np.isfinite(score)):
        raise ValueError(f"champion {champion.label()} returned invalid scores")
    scores = pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "score": score,
            "decile": deciles(score, params.scoring.deciles),
            "model_name": champion.name,
            "model_version": champion.version,
            "as_of": as_of,
            "scored_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        }
    )
    from orchestration.defs.quality.gx import validate_table

    # Validated before they replace anything: bad scores never reach the table.
    staged = warehouse.stage_scores(scores, SCORES_TABLE)
    outcome = validate_table(
        warehouse.sqlalchemy_url(),
        staged,
        SUITE,
        params.suite_parameters(),
        relation=warehouse.relation(staged),
    )
    if not outcome.success:
        yield check_result(outcome)
        raise dg.Failure(
            description=(
                f"the scores of {champion.label()} fail check {check_name(SUITE)}, so "
                f"{SCORES_TABLE} is unchanged (the rejected scores are in {staged})"
            )
        )
    written = warehouse.publish_scores(staged, as_of, SCORES_TABLE)
    seconds = time.perf_counter() - started
    context.log.info(f"{written:,} customers scored as of {as_of} by {champion.label()}")
    yield dg.MaterializeResult(
        check_results=[check_result(outcome)],
        metadata={
            "dagster/row_count": written,
            # Read, score and write, end to end.
            "seconds": round(seconds, 2),
            "customers_per_second": round(written / seconds) if seconds > 0 else None,
            "as_of": as_of.isoformat(),
            "champion": champion.label(),
            # One line for people (and `nextbuy tick`): what the table now holds.
            "summary": f"{written:,} customers scored as of {as_of} by {champion.label()}",
            "mean_score": float(score.mean()),
            "score_quantiles": {
                f"p{q}": float(np.quantile(score, q / 100)) for q in (10, 50, 90, 99)
            },
            "top_decile_mean_score": float(score[scores["decile"] == 1].mean()),
        },
    )

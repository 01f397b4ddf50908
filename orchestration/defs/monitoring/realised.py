"""realised_performance: how the published scores did once their outcomes arrived, per
scored as-of date, with the `performance` check (performance.py) of the newest date that
has enough of them.

Kept whole: one asset, the reading of score_outcomes it needs for both sources of scores,
and the tables it shows; performance.py holds the check, page.py the report's page.

Outcomes are dbt's `score_outcomes` (marts.score_outcomes): for every published score,
the customer's next purchase after the as-of date, labelled as training_examples label
purchase k. The score is the probability that the next order holds a target brand *given*
that there is one, so only customers with a next order are labelled; of those without, a
customer is pending while fewer than monitoring.label_horizon_days have been observed
since the date, and unlabelled once the horizon has passed without an order. Every date
up to the partition's is recomputed at each materialisation, as outcomes keep arriving,
for the customers of the monitoring sample (reference.MonitoringSample: all of them up to
monitoring.sample_size), so that its cost does not grow with the shop.

Online scores (the serving API's, source `online` in score_outcomes: the latest request
per customer and date) are judged the same way and shown beside the batch's, for the dates
with monitoring.min_labelled labelled online customers of the same sample; the
`performance` check judges the batch scores only, which score every customer.
"""

import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from dagster_dbt import get_asset_key_for_model

from ml.realised import realised_performance
from orchestration.defs.features.assets import scoring_models
from orchestration.defs.monitoring.performance import (
    REALISED_KEY,
    Judgement,
    judge,
    metadata_value,
    performance_check_result,
    performance_check_spec,
)
from orchestration.defs.monitoring.reference import MonitoringSample
from orchestration.defs.scoring.assets import SCORES_KEY
from orchestration.environment import warehouse_kind
from orchestration.partitions import AS_OF_DATES
from orchestration.registry import ModelRef, Registry, RegistryError
from orchestration.resources import ParametersResource, RegistryResource, Warehouse
from orchestration.settings import Parameters

SCORE_OUTCOMES = "marts.score_outcomes"
SCORE_OUTCOMES_KEY = get_asset_key_for_model([scoring_models], "score_outcomes")
BATCH, ONLINE = "batch", "online"
# The online figures shown beside the batch's, per date.
ONLINE_COLUMNS = ["as_of", "scored", "n_labelled", "positive_rate", "mean_score", "roc_auc"]
# The evaluation-time metrics read from the scoring model's MLflow run.
EVAL_PREFIX = "eval_"


@dataclass(frozen=True)
class ScoringModel:
    """A model that scored some dates, and what it measured on its test window."""

    version: str
    label: str
    # roc_auc, lift_at_<k>, base_rate... as logged; NaN when the run lacks one.
    evaluation: Mapping[str, float]
    # None when the version has been deleted since it scored.
    ref: ModelRef | None


@dataclass(frozen=True)
class Performance:
    """Realised performance of every scored date up to ``as_of``, one row per date:
    as_of, model_version, scored, n_labelled, n_pending, n_unlabelled, positives,
    positive_rate, mean_score, roc_auc, lift_at_<k>, the scoring model's eval_roc_auc,
    eval_lift_at_<k> and eval_base_rate, and a reason where a realised metric is NaN."""

    as_of: dt.date
    table: pd.DataFrame
    models: dict[str, ScoringModel]
    lift_column: str
    # The customers read, chosen by the number scored as of ``as_of``.
    sample: MonitoringSample
    # The online scores' realised figures (ONLINE_COLUMNS and the lift), one row per date
    # with min_labelled labelled online customers.
    online: pd.DataFrame

    def row(self, as_of: dt.date) -> pd.Series:
        return self.table.loc[self.table["as_of"] == as_of].iloc[0]


def load_performance(
    warehouse: Warehouse, reg: Registry, params: Parameters, as_of: dt.date
) -> Performance:
    """Realised performance of every date scored up to ``as_of`` (which must be scored)."""
    monitoring, evaluation = params.monitoring, params.evaluation
    if not warehouse.has_table(SCORE_OUTCOMES):
        raise LookupError(
            f"{SCORE_OUTCOMES} does not exist: materialise the scoring dbt models (they "
            "build score_outcomes from ml.customer_scores) first"
        )
    sample = MonitoringSample.counted(
        warehouse,
        SCORE_OUTCOMES,
        monitoring.sample_size,
        "as_of = ? and source = ?",
        [as_of, BATCH],
    )
    rows, counts = read_outcomes(warehouse, as_of, monitoring.label_horizon_days, sample)
    if as_of not in set(counts["as_of"]):
        raise LookupError(
            f"{SCORE_OUTCOMES} holds no score as of {as_of}: materialise ml/customer_scores "
            f"and the scoring dbt models for {as_of} first"
        )
    realised = realised_performance(
        rows[["customer_id", "as_of", "score"]],
        rows.loc[rows["label"].notna(), ["customer_id", "as_of", "label"]],
        top_k_percents=evaluation.top_k_percents,
        min_labelled=monitoring.min_labelled,
    )
    table = counts.merge(realised.drop(columns="n"), on="as_of", how="left", validate="1:1")
    empty = table["n_labelled"].isna()
    table.loc[empty, ["n_labelled", "n_pending", "positives"]] = 0
    table.loc[empty, "reason"] = "no customer labelled or pending"
    for column in ("n_labelled", "n_pending", "positives"):
        table[column] = table[column].astype("int64")
    models = {
        version: scoring_model(reg, name, version)
        for name, version in counts[["model_name", "model_version"]].drop_duplicates().values
    }
    lift_columns = [f"lift_at_{k:g}" for k in evaluation.top_k_percents]
    for metric in ["roc_auc", *lift_columns, "base_rate"]:
        table[EVAL_PREFIX + metric] = [
            models[v].evaluation.get(metric, math.nan) for v in table["model_version"]
        ]
    table["model"] = [models[v].label for v in table["model_version"]]
    return Performance(
        as_of=as_of,
        table=table,
        models=models,
        lift_column=lift_columns[0],
        sample=sample,
        online=online_performance(warehouse, params, as_of, sample),
    )


def online_performance(
    warehouse: Warehouse, params: Parameters, as_of: dt.date, sample: MonitoringSample
) -> pd.DataFrame:
    """The online scores' realised figures of every date up to ``as_of`` with
    monitoring.min_labelled labelled online customers of ``sample``, judged as the batch's
    are (read_outcomes, ml.realised.realised_performance)."""
    monitoring, evaluation = params.monitoring, params.evaluation
    lift = f"lift_at_{evaluation.top_k_percents[0]:g}"
    rows, counts = read_outcomes(
        warehouse, as_of, monitoring.label_horizon_days, sample, source=ONLINE
    )
    if counts.empty:
        return pd.DataFrame(columns=[*ONLINE_COLUMNS, lift])
    realised = realised_performance(
        rows[["customer_id", "as_of", "score"]],
        rows.loc[rows["label"].notna(), ["customer_id", "as_of", "label"]],
        top_k_percents=evaluation.top_k_percents,
        min_labelled=monitoring.min_labelled,
    )
    table = counts.merge(realised, on="as_of", how="inner", validate="1:1")
    judged = table[table["n_labelled"] >= monitoring.min_labelled]
    return judged[[*ONLINE_COLUMNS, lift]].reset_index(drop=True)


def read_outcomes(
    warehouse: Warehouse,
    as_of: dt.date,
    horizon_days: int,
    sample: MonitoringSample,
    source: str = BATCH,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From marts.score_outcomes, for every date up to ``as_of``, the sample's customers
    and one source: the labelled and pending customers (customer_id, as_of, score, label;
    NaN while pending), and per date the scoring model, the customers scored and those
    unlabelled (no order in the horizon). One model must have scored a batch date; online
    requests of a date may have been served by several (its smallest is named)."""
    classified = f"""
        select
            customer_id,
            as_of,
            model_name,
            model_version,
            score,
            next_order_has_target_brand,
            coalesce(days_to_next_order < {horizon_days:d}, false) as labelled,
            coalesce(days_observed < {horizon_days:d}, true) as watched
        from {warehouse.relation(SCORE_OUTCOMES)}
        where as_of <= ? and source = ? and {sample.where()}
    """
    rows = warehouse.query(
        f"""select customer_id, as_of, score,
                   case when labelled then next_order_has_target_brand end as label
            from ({classified}) where labelled or watched
            order by as_of, customer_id""",
        [as_of, source],
    )
    counts = warehouse.query(
        f"""select as_of,
                   count(distinct concat(model_name, ' v', model_version)) as models,
                   min(model_name) as model_name,
                   min(model_version) as model_version,
                   count(*) as scored,
                   countif(not labelled and not watched) as n_unlabelled
            from ({classified}) group by as_of order by as_of""",
        [as_of, source],
    )
    for frame in (rows, counts):
        frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    several = counts[counts["models"] > 1]
    if source == BATCH and len(several):
        raise ValueError(
            f"{SCORE_OUTCOMES} holds scores of more than one model as of "
            f"{', '.join(str(d) for d in several['as_of'])}: rebuild it from ml.customer_scores"
        )
    rows["label"] = pd.to_numeric(rows["label"]).astype("float64")
    counts["model_version"] = counts["model_version"].astype(str)
    # DuckDB's countif is a HUGEINT, which pandas receives as a float.
    counts["n_unlabelled"] = counts["n_unlabelled"].astype("int64")
    return rows, counts.drop(columns="models")


def scoring_model(reg: Registry, name: str, version: str) -> ScoringModel:
    """A version's label and its run's test-window metrics (NaN when it has been deleted)."""
    if name != reg.model_name:
        raise ValueError(
            f"{SCORE_OUTCOMES} holds scores of {name} v{version}, not of the registry's "
            f"{reg.model_name}"
        )
    try:
        ref = reg.version(version)
    except RegistryError:
        return ScoringModel(version, f"{name} v{version} (deleted)", {}, None)
    metrics = dict(reg.client.get_run(ref.run_id).data.metrics)
    return ScoringModel(version, ref.label(), metrics, ref)


def gives_probabilities(reg: Registry) -> Callable[[ScoringModel], bool]:
    """Whether a model's scores are probabilities (the share rule's are a ranking), read
    from the scorer itself; a deleted version cannot be judged on calibration."""

    def probabilities(model: ScoringModel) -> bool:
        if model.ref is None:
            return False
        return bool(getattr(reg.load_scorer(model.ref).scorer, "is_probability", True))

    return probabilities


@dg.asset(
    key=REALISED_KEY,
    group_name="monitoring",
    partitions_def=AS_OF_DATES,
    deps=[SCORES_KEY, SCORE_OUTCOMES_KEY],
    kinds={warehouse_kind(), "mlflow"},
    check_specs=[performance_check_spec],
)
def realised_performance_asset(
    context: dg.AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    registry: RegistryResource,
) -> Iterator[dg.MaterializeResult]:  # type: ignore[type-arg]
    """Realised ROC-AUC, lift, positive rate against mean score (calibration), labelled
    and pending customers of every scored as-of date up to the partition's (recomputed
    each time, as outcomes keep arriving), beside the evaluation-time figures of the model
    that scored each date; the `performance` check judges the newest date with enough
    outcomes."""
    params = parameters.load()
    as_of = dt.date.fromisoformat(context.partition_key)
    reg = registry.open(params.registry)
    performance = load_performance(warehouse, reg, params, as_of)
    own = performance.row(as_of)
    scorer = performance.models[own["model_version"]].label
    judgement = judge(performance, params.monitoring, scorer, gives_probabilities(reg))
    context.log.info(f"realised performance as of {as_of}: {judgement.description}")
    yield dg.MaterializeResult(
        metadata={
            **date_metadata(own, performance.lift_column),
            "as_of": as_of.isoformat(),
            "champion": scorer,
            "label_horizon_days": params.monitoring.label_horizon_days,
            "sample": performance.sample.describe(),
            "performance_status": judgement.status,
            "dates": len(performance.table),
            "online_dates": len(performance.online),
            "by_date": dg.MetadataValue.md(markdown_table(performance)),
            "summary": summary(performance, judgement),
        },
        check_results=[
            performance_check_result(
                judgement, params.monitoring, as_of=as_of.isoformat(), champion=scorer
            )
        ],
    )


def date_metadata(row: pd.Series, lift_column: str) -> dict[str, Any]:
    """The partition's own date: its customers and, once labelled, its realised figures."""
    return {
        "dagster/row_count": int(row["scored"]),
        "scored": int(row["scored"]),
        "labelled": int(row["n_labelled"]),
        "pending": int(row["n_pending"]),
        "unlabelled": int(row["n_unlabelled"]),
        "positives": int(row["positives"]),
        **{
            name: metadata_value(float(row[name]))
            for name in ("positive_rate", "mean_score", "roc_auc", lift_column)
        },
        "eval_roc_auc": metadata_value(float(row["eval_roc_auc"])),
        f"eval_{lift_column}": metadata_value(float(row[f"eval_{lift_column}"])),
        "reason": str(row["reason"]) or "(none)",
    }


def summary(performance: Performance, judgement: Judgement) -> str:
    own = performance.row(performance.as_of)
    line = (
        f"as of {performance.as_of}: {own['n_labelled']:,} of {own['scored']:,} scored "
        f"customers labelled, {own['n_pending']:,} pending"
    )
    if performance.sample.stride > 1:
        line += f" (in the monitoring sample: 1 in {performance.sample.stride} customers)"
    if judgement.judged is None:
        return f"{line}; no date judged yet"
    return f"{line}; performance {judgement.status}: {judgement.description}"


DISPLAY_COLUMNS = [
    "as_of",
    "model",
    "scored",
    "n_labelled",
    "n_pending",
    "n_unlabelled",
    "positive_rate",
    "mean_score",
    "roc_auc",
    "eval_roc_auc",
]


def display_table(performance: Performance) -> pd.DataFrame:
    """The table people read: newest date first, the headline lift beside AUC, and the
    online scores' figures (``online_*``) beside the batch's, on the dates judged online
    (a date judged online only has its own row), when there are any."""
    lift = performance.lift_column
    columns = [*DISPLAY_COLUMNS, lift, f"eval_{lift}", "reason"]
    if performance.online.empty:
        return performance.table[columns].iloc[::-1].reset_index(drop=True)
    online = performance.online[[*ONLINE_COLUMNS, lift]]
    online = online.rename(columns={c: f"online_{c}" for c in online.columns if c != "as_of"})
    table = performance.table[columns].merge(online, on="as_of", how="outer", validate="1:1")
    table = table.sort_values("as_of", ascending=False, kind="stable")
    return table.reset_index(drop=True)


def markdown_table(performance: Performance) -> str:
    return display_table(performance).round(3).to_markdown(index=False)

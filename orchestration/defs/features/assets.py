"""dbt models as Dagster assets; dbt tests become asset checks.

Two dbt asset definitions over one manifest: the feature models (staging, intermediate,
marts) and the scoring models, which read the scores a Python asset writes between them,
so lineage runs raw -> dbt -> Python -> dbt. Other domains find a model's asset key with
`model_key`, never by spelling it.
"""

from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets, get_asset_key_for_model
from pydantic import Field

from orchestration.dbt import (
    SCORING_SELECTOR,
    asset_events,
    dbt_invocation,
    dbt_project,
    prepare_manifest,
)
from orchestration.partitions import AS_OF_DATES, ORDER_ITEMS_DAYS
from orchestration.resources import ParametersResource, Warehouse, duckdb_file

# dbt source -> the asset key prefix of what fills it (raw tables, the scores asset).
SOURCE_PREFIX = {"thelook": "raw", "thelook_meta": "meta", "ml": "ml"}


class NextbuyTranslator(DagsterDbtTranslator):
    """Sources keyed by the schema that holds them, so raw.* and ml.customer_scores are
    the same assets Python defines; models grouped as features unless dbt says otherwise."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            prefix = SOURCE_PREFIX[dbt_resource_props["source_name"]]
            return dg.AssetKey([prefix, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """By the model's dbt tags (`monitoring`, `scoring`), else features."""
        tags = set(dbt_resource_props.get("tags") or ())
        group = next((g for g in ("monitoring", "scoring") if g in tags), "features")
        return super().get_group_name(dbt_resource_props) or group

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: Any,
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt describes a check only from the test's `meta.description`; the
        test's own dbt `description` (what the docs site shows) comes first here, and a
        test without one is described by what it is and where it applies."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return spec._replace(description=check_description(manifest["nodes"][unique_id]))


def check_description(test: Mapping[str, Any]) -> str:
    """A dbt test's description for people: its own, else its kind, column and model."""
    if test.get("description"):
        return str(test["description"])
    metadata = test.get("test_metadata") or {}
    model = test.get("attached_node", "").rsplit(".", 1)[-1] or "the model"
    kind = metadata.get("name")
    if not kind:  # a singular test: a query that returns the rows breaking the rule
        return f"dbt singular test {test['name']} ({test.get('original_file_path', '')})"
    column = test.get("column_name")
    where = f"column {column} of {model}" if column else model
    arguments = {k: v for k, v in (metadata.get("kwargs") or {}).items() if k not in _IMPLIED}
    detail = f" ({', '.join(f'{k}: {v}' for k, v in arguments.items())})" if arguments else ""
    return f"dbt test {kind} on {where}{detail}."


_IMPLIED = {"column_name", "model"}


class FeaturesConfig(dg.Config):
    """Run parameters of a dbt build."""

    as_of: str | None = Field(
        default=None,
        description=(
            "Date (YYYY-MM-DD) customer_features is computed as of; default: the day after "
            "the newest complete day partition of raw.order_items (dates follow the data)."
        ),
    )
    full_refresh: bool = Field(
        default=False, description="Rebuild incremental models from all history."
    )
    rebuild: bool = Field(
        default=False,
        description=(
            "Process every day partition dbt finds changed (its own change log), not only "
            "the run's partition keys: the first build, or one after more days changed "
            "than a run records as partitions (partitions.MAX_RANGE_DAYS). The run is "
            "keyed by the newest of them."
        ),
    )


# One manifest and one translator; the two definitions differ only in which models they hold.
_COMMON: dict[str, Any] = {
    "manifest": prepare_manifest(),
    "project": dbt_project(),
    "dagster_dbt_translator": NextbuyTranslator(),
}


@dbt_assets(
    **_COMMON,
    exclude=SCORING_SELECTOR,
    name="feature_models",
    partitions_def=ORDER_ITEMS_DAYS,
    # A range of days (a backfill from the UI or the CLI) is one dbt invocation: the
    # incremental models recompute the customers of all those days at once.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def feature_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
    config: FeaturesConfig,
) -> Iterator[Any]:
    """Staging, intermediate and the marts training_examples and customer_features, for
    the raw order_items day partitions of the run (one key, or a range).

    The days are passed to dbt as ``partitions``, so the incremental models recompute the
    customers with items in those days, whatever dbt's own change log says; with
    ``full_refresh`` every model is rebuilt from all history instead. customer_features is
    computed as of ``as_of`` (default: the day after the newest complete day).

    When the marts were built with other data-defining settings or SQL than now
    (orchestration/fingerprint.py), or raw lost partitions or was replaced whole since the
    last build (orchestration/removals.py), the build is a full refresh whatever was
    asked, and the log says why."""
    from orchestration.fingerprint import current_fingerprint, record_fingerprint
    from orchestration.partitions import processed_state, record_processed
    from orchestration.removals import full_rebuild_notice

    # Read before the build: a partition that changes during it is new for the next run.
    partitions = warehouse.partitions()
    params = parameters.load()
    fingerprint = current_fingerprint(params)
    full_refresh = config.full_refresh
    notice = None
    if not full_refresh:
        notice = full_rebuild_notice(warehouse, fingerprint, processed_state(context.instance))
    if notice:
        context.log.warning(notice)
        full_refresh = True
    whole = full_refresh or config.rebuild
    days = None if whole else list(context.partition_keys)
    shown = (
        f"all {len(partitions)} (keyed {context.partition_keys[-1]})"
        if whole
        else _days_text(list(context.partition_keys))
    )
    as_of = config.as_of or _data_as_of(partitions)
    context.log.info(f"raw.order_items partitions {shown}; customer_features as of {as_of}")
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
    for event in asset_events(
        dbt_invocation(
            dbt,
            args,
            params=params,
            warehouse=duckdb_file(warehouse),
            as_of=as_of,
            partitions=days,
            # A run over some days tests only the customers it rebuilt (macros/scoped_tests.sql);
            # full builds and rebuilds test whole tables.
            changed_only=days is not None,
            context=context,
        ),
        duckdb=duckdb_file(warehouse),
    ):
        # The date the scoring of this build is for: what the next step (the sensor
        # features_ready, `nextbuy pipeline`) reads back.
        if _is_model(context, event, CUSTOMER_FEATURES_KEY):
            event = event.with_metadata(
                {**event.metadata, AS_OF_METADATA: as_of, "partitions": shown}
            )
        yield event
    # Only after a whole successful build (a failed one raises above); what was built
    # is what the partitions table said before it began.
    built = set(days or [])
    record_processed(
        context.instance,
        [p for p in partitions if days is None or p.partition_id in built],
        merge=not full_refresh,
    )
    record_fingerprint(warehouse, fingerprint)


# Metadata of customer_features' materialisation: the date it is computed as of.
AS_OF_METADATA = "as_of"


def _is_model(context: dg.AssetExecutionContext, event: Any, key: dg.AssetKey) -> bool:
    if isinstance(event, dg.AssetMaterialization):
        return event.asset_key == key
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name) == key
    return False


def _days_text(days: list[str]) -> str:
    if not days:
        return "(none)"
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"


def _data_as_of(partitions: list[Any]) -> str:
    from orchestration.partitions import data_as_of

    as_of = data_as_of(partitions)
    if as_of is None:
        raise dg.Failure(
            description=(
                "raw.order_items has no complete day partition, so there is "
                "no date to compute features as of: load or simulate data first, or give "
                "as_of explicitly"
            )
        )
    return as_of.isoformat()


@dbt_assets(**_COMMON, select=SCORING_SELECTOR, name="scoring_models", partitions_def=AS_OF_DATES)
def scoring_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: dg.ResourceParam[Warehouse],
    parameters: ParametersResource,
) -> Iterator[Any]:
    """campaign_audience: the top customers by the champion's scores of the partition's
    as-of date; its metadata says where the audience was cut and how many customers
    shared the score at the cut (orchestration/audience.py)."""
    for event in asset_events(
        dbt_invocation(
            dbt,
            ["build"],
            params=parameters.load(),
            warehouse=duckdb_file(warehouse),
            as_of=context.partition_key,
            # The tests of score_outcomes and of the scores read what this run wrote or
            # published, not every date scored before (macros/scoped_tests.sql).
            changed_only=True,
            context=context,
        ),
        duckdb=duckdb_file(warehouse),
    ):
        if _is_model(context, event, AUDIENCE_KEY):
            event = event.with_metadata({**event.metadata, **_audience_metadata(warehouse)})
        yield event


def _audience_metadata(warehouse: Warehouse) -> dict[str, Any]:
    from orchestration.audience import audience_cut

    # dbt has finished by now: dagster-dbt yields a DuckDB build's events only after the
    # dbt process exits and releases the file.
    cut = audience_cut(warehouse)
    return {**cut.as_metadata(), "cut": cut.describe()}


def model_key(model: str) -> dg.AssetKey:
    """The asset key dagster-dbt gives a dbt model of either definition."""
    # get_asset_key_for_model reads one definition's manifest; both share it, and the
    # feature models are where other domains look.
    return get_asset_key_for_model([feature_models], model)


TRAINING_EXAMPLES_KEY = model_key("training_examples")
CUSTOMER_FEATURES_KEY = model_key("customer_features")
AUDIENCE_KEY = get_asset_key_for_model([scoring_models], "campaign_audience")

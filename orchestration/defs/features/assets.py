"""dbt models as Dagster assets; dbt tests become asset checks.

Two dbt asset definitions over one manifest: the feature models (staging, intermediate,
marts) and the scoring models, which read the scores a Python asset writes between them,
so lineage runs raw -> dbt -> Python -> dbt.
"""

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets
from pydantic import Field

from orchestration.dbt import dbt_env, dbt_vars
from orchestration.defs.features.project import dbt_project, prepare_manifest
from orchestration.environment import current_environment
from orchestration.resources import ParametersResource, WarehouseResource

SCORING_TAG = "scoring"
# The marts the Python assets read: dbt models keyed <schema>/<name>, like their tables.
TRAINING_EXAMPLES_KEY = dg.AssetKey(["marts", "training_examples"])
CUSTOMER_FEATURES_KEY = dg.AssetKey(["marts", "customer_features"])
# dbt source -> the asset key of what fills it (raw tables, the scores asset).
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
        return super().get_group_name(dbt_resource_props) or "features"


class FeaturesConfig(dg.Config):
    """Run parameters of a dbt build."""

    as_of: str | None = Field(
        default=None,
        description="Date (YYYY-MM-DD) customer_features is computed as of; default: today (UTC).",
    )
    full_refresh: bool = Field(
        default=False, description="Rebuild incremental models from all history."
    )


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """dagster-dbt hands this process's environment to dbt; set ours around the call."""
    previous = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(previous)


def _build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    parameters: ParametersResource,
    config: FeaturesConfig,
) -> Iterator[Any]:
    env = current_environment()
    process_env = dbt_env(env, Path(warehouse.path), as_of=config.as_of)
    args = ["build", "--vars", json.dumps(dbt_vars(parameters.load()), default=str)]
    if config.full_refresh:
        args.append("--full-refresh")
    with _environ(process_env):
        invocation = dbt.cli(
            args, context=context, target_path=Path(process_env["DBT_TARGET_PATH"])
        )
    yield from invocation.stream()


def build_dbt_assets() -> list[dg.AssetsDefinition]:
    """Both dbt asset definitions; parses the project first when the manifest is stale."""
    # One manifest and one translator; the two differ only in which models they hold.
    common = {
        "manifest": prepare_manifest(),
        "project": dbt_project(),
        "dagster_dbt_translator": NextbuyTranslator(),
    }

    @dbt_assets(**common, exclude=f"tag:{SCORING_TAG}", name="feature_models")
    def feature_models(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        parameters: ParametersResource,
        config: FeaturesConfig,
    ) -> Iterator[Any]:
        """Staging, intermediate and the marts training_examples and customer_features."""
        yield from _build(context, dbt, warehouse, parameters, config)

    @dbt_assets(**common, select=f"tag:{SCORING_TAG}", name="scoring_models")
    def scoring_models(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        parameters: ParametersResource,
    ) -> Iterator[Any]:
        """campaign_audience: the top customers by the champion's newest scores."""
        yield from _build(context, dbt, warehouse, parameters, FeaturesConfig())

    return [feature_models, scoring_models]

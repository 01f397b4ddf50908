"""Great Expectations suites (expectations/) as blocking Dagster asset checks.

A failing suite stops everything downstream of its asset in that run: no training on bad
examples, no scoring of bad features, no audience from bad scores; the previous champion,
scores and audience stay as they were. The check's description names every failed
expectation and its column.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from orchestration.defs.features.assets import CUSTOMER_FEATURES_KEY, TRAINING_EXAMPLES_KEY
from orchestration.defs.scoring.assets import SCORES_KEY
from orchestration.resources import ParametersResource, WarehouseResource


@dataclass(frozen=True)
class SuiteCheck:
    asset: dg.AssetKey
    suite: str
    table: str
    # Restricts the batch; scores are validated for the date just written.
    where: str | None = None


SUITE_CHECKS = (
    SuiteCheck(TRAINING_EXAMPLES_KEY, "training_examples", "marts.training_examples"),
    SuiteCheck(CUSTOMER_FEATURES_KEY, "customer_features", "marts.customer_features"),
    SuiteCheck(
        SCORES_KEY,
        "customer_scores",
        "ml.customer_scores",
        where="as_of = (select max(as_of) from ml.customer_scores)",
    ),
)


def _suite_check(spec: SuiteCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=spec.asset,
        name=f"gx_{spec.suite}",
        blocking=True,
        description=f"Great Expectations suite expectations/{spec.suite}.json on {spec.table}.",
    )
    def check(warehouse: WarehouseResource, parameters: ParametersResource) -> dg.AssetCheckResult:
        from orchestration.defs.quality.gx import suite_parameters, validate_table, warehouse_url

        outcome = validate_table(
            warehouse_url(Path(warehouse.path)),
            spec.table,
            spec.suite,
            suite_parameters(parameters.load()),
            where=spec.where,
        )
        return dg.AssetCheckResult(
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            description=outcome.summary(),
            metadata=outcome.as_metadata(),
        )

    return check


def quality_checks() -> list[dg.AssetChecksDefinition]:
    return [_suite_check(spec) for spec in SUITE_CHECKS]

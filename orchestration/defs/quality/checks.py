"""Great Expectations suites (expectations/) as blocking Dagster asset checks.

A failing suite stops everything downstream of its asset in that run: no training on bad
examples, no scoring of bad features, no audience from bad scores; the previous champion,
scores and audience stay as they were. The check's description names every failed
expectation and its column; its metadata holds the counts and a table of the failures
(expectation, column, arguments, observed), which the Dagster UI shows as a table.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from orchestration.defs.features.assets import CUSTOMER_FEATURES_KEY, TRAINING_EXAMPLES_KEY
from orchestration.resources import ParametersResource, Warehouse

if TYPE_CHECKING:
    from orchestration.defs.quality.gx import ValidationOutcome


def check_name(suite: str) -> str:
    return f"gx_{suite}"


def check_result(outcome: "ValidationOutcome") -> dg.AssetCheckResult:
    """A suite's outcome as a (blocking, ERROR-severity) Dagster check result."""
    return dg.AssetCheckResult(
        check_name=check_name(outcome.suite),
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary(),
        metadata=outcome.as_metadata(),
    )


@dataclass(frozen=True)
class SuiteCheck:
    asset: dg.AssetKey
    suite: str
    table: str


# The built marts. The scores are validated by customer_scores itself, staged, before they
# are published (orchestration/defs/scoring/assets.py), and report the same check there.
SUITE_CHECKS = (
    SuiteCheck(TRAINING_EXAMPLES_KEY, "training_examples", "marts.training_examples"),
    SuiteCheck(CUSTOMER_FEATURES_KEY, "customer_features", "marts.customer_features"),
)


def _suite_check(spec: SuiteCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=spec.asset,
        name=check_name(spec.suite),
        blocking=True,
        description=f"Great Expectations suite expectations/{spec.suite}.json on {spec.table}.",
    )
    def check(
        warehouse: dg.ResourceParam[Warehouse], parameters: ParametersResource
    ) -> dg.AssetCheckResult:
        from orchestration.defs.quality.gx import validate_table

        outcome = validate_table(
            warehouse.sqlalchemy_url(),
            spec.table,
            spec.suite,
            parameters.load().suite_parameters(),
            relation=warehouse.relation(spec.table),
        )
        return check_result(outcome)

    return check


suite_checks = [_suite_check(spec) for spec in SUITE_CHECKS]

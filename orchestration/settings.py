"""parameters.yaml as one typed model, validated once when it is read.

Every step receives only its own section, as a kedro node receives `params:<section>`:
training gets `split`, `model`, `evaluation`; the gate `gate`; scoring `scoring`. What
dbt and the Great Expectations suites need is derived here, in `dbt_vars` and
`suite_parameters`, and nowhere else. A wrong or missing setting fails at load time with
an error that names it (``model.catboost.depth``), not deep inside a run.

Kept whole: one section class per parameters.yaml section, each a few lines, and the one
loader that validates them together; split, a setting would have two homes to look in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestration.environment import PROJECT_ROOT
from thelook.settings import SimulationSettings

DEFAULT_PARAMETERS = PROJECT_ROOT / "parameters.yaml"


class _Section(BaseModel):
    # A misspelt key is an error, not a silently ignored setting; .nan and .inf (YAML
    # floats) pass range checks such as ge=0 unnoticed, so no setting takes them.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CampaignSettings(_Section):
    name: str = Field(min_length=1)
    target_brands: tuple[str, ...] = Field(min_length=1)

    @field_validator("target_brands")
    @classmethod
    def _named(cls, brands: tuple[str, ...]) -> tuple[str, ...]:
        if not all(b.strip() for b in brands):
            raise ValueError("every target brand needs a name")
        if len(set(brands)) != len(brands):
            raise ValueError("a target brand is listed twice")
        return brands


class FeatureSettings(_Section):
    sequence_length: int = Field(ge=1)
    examples: Literal["every_order", "last_order"]


class SplitSettings(_Section):
    test_days: int = Field(ge=1)
    validation_days: int = Field(ge=1)
    gap_days: int = Field(ge=0)
    # Rolling-origin backtest: this many consecutive test windows (ml/split.py).
    folds: int = Field(ge=1)

    def windows(self) -> dict[str, int]:
        """Keyword arguments of one split (``ml.time_gapped_split``)."""
        return self.model_dump(exclude={"folds"})


class SearchRange(_Section):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range must be positive")
        return self


class TuningSettings(_Section):
    """The Optuna study on the backtest folds (ml/tuning.py)."""

    trials: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    seed: int
    space: dict[str, SearchRange]


class ChallengerSettings(_Section):
    """The logistic challenger (ml/logistic.py)."""

    enabled: bool
    cross_with: str = Field(min_length=1)
    numeric_features: tuple[str, ...] = Field(min_length=1)
    indicator_features: tuple[str, ...]
    C: float = Field(gt=0)

    def estimator_params(self) -> dict[str, Any]:
        """Keyword arguments of `ml.LogisticModel`."""
        return {
            "numeric_features": list(self.numeric_features),
            "indicator_features": list(self.indicator_features),
            "cross_with": self.cross_with,
            "C": self.C,
        }


class OnlineSettings(_Section):
    """The online-learning challenger (ml/online.py)."""

    enabled: bool
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    learning_rate: float = Field(gt=0)
    l2: float = Field(ge=0)
    checkpoints: int = Field(ge=1)

    @model_validator(mode="after")
    def _some_feature(self) -> OnlineSettings:
        if not (self.numeric_features or self.categorical_features):
            raise ValueError("the online model needs at least one feature")
        return self

    def estimator_params(self, label_delay_days: int) -> dict[str, Any]:
        """Keyword arguments of `ml.OnlineModel`; the label delay is monitoring's label
        horizon (how long a scored customer's outcome can take to arrive)."""
        return {
            "numeric_features": list(self.numeric_features),
            "categorical_features": list(self.categorical_features),
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "checkpoints": self.checkpoints,
            "label_delay_days": label_delay_days,
        }


class ModelSettings(_Section):
    categorical_features: tuple[str, ...]
    numeric_features: tuple[str, ...]
    text_features: tuple[str, ...]
    missing_category: str
    correct_class_weights: bool
    # Passed to catboost.CatBoostClassifier as they are: CatBoost validates its own names.
    catboost: dict[str, Any]

    @model_validator(mode="after")
    def _some_feature(self) -> ModelSettings:
        if not (self.categorical_features or self.numeric_features or self.text_features):
            raise ValueError("the model needs at least one feature (categorical, numeric or text)")
        return self

    def estimator_params(self) -> dict[str, Any]:
        """Keyword arguments of `ml.PropensityModel`."""
        return {
            "categorical_features": list(self.categorical_features),
            "numeric_features": list(self.numeric_features),
            "text_features": list(self.text_features),
            "catboost_params": dict(self.catboost),
            "missing_category": self.missing_category,
            "correct_class_weights": self.correct_class_weights,
        }


class SliceSettings(_Section):
    categorical: tuple[str, ...]
    top_categories: int = Field(ge=1)
    bucketed: dict[str, tuple[int, ...]]

    @field_validator("bucketed")
    @classmethod
    def _increasing(cls, bucketed: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        for column, edges in bucketed.items():
            if not edges or any(a >= b for a, b in pairwise(edges)):
                raise ValueError(f"{column}: bucket edges must be given and increase")
        return bucketed


class EvaluationSettings(_Section):
    top_k_percents: tuple[float, ...] = Field(min_length=1)
    calibration_bins: int = Field(ge=2)
    bootstrap_samples: int = Field(ge=10)
    confidence_level: float = Field(gt=0, lt=1)
    min_slice_positives: int = Field(ge=1)
    baseline_group_columns: tuple[str, ...]
    slices: SliceSettings

    @field_validator("top_k_percents")
    @classmethod
    def _percents(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < v <= 100 for v in values):
            raise ValueError("each percent must lie in (0, 100]")
        return values


class GateSettings(_Section):
    metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"]
    margin: float = Field(ge=0)
    seed: int


class RegistrySettings(_Section):
    experiment: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    champion_alias: str = Field(min_length=1)


class ScoringSettings(_Section):
    deciles: int = Field(ge=2)
    audience_top_percent: float = Field(gt=0, le=100)


class RetrainingSettings(_Section):
    schedule: str = Field(min_length=9)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a cron expression (minute hour day month weekday)")
        return value


class MonitoringSettings(_Section):
    # Drift (ml/drift.py, monitoring/feature_drift).
    warn_psi: float = Field(gt=0)
    fail_psi: float = Field(gt=0)
    bins: int = Field(ge=2)
    top_tokens: int = Field(ge=1)
    # Drift and realised performance read every customer up to this many, a systematic
    # sample of about this many beyond (reference.MonitoringSample).
    sample_size: int = Field(ge=1000)
    # Realised performance (ml/realised.py, monitoring/realised_performance).
    label_horizon_days: int = Field(ge=1)
    min_labelled: int = Field(ge=1)
    warn_auc_drop: float = Field(gt=0, lt=0.5)
    fail_auc_drop: float = Field(gt=0, lt=0.5)
    warn_calibration_error: float = Field(gt=0)
    fail_calibration_error: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringSettings:
        for warn, fail in (
            ("warn_psi", "fail_psi"),
            ("warn_auc_drop", "fail_auc_drop"),
            ("warn_calibration_error", "fail_calibration_error"),
        ):
            if getattr(self, fail) <= getattr(self, warn):
                raise ValueError(f"{fail} must be above {warn}")
        return self


class Parameters(_Section):
    """The whole parameters file; each attribute is one section."""

    campaign: CampaignSettings
    simulation: SimulationSettings
    features: FeatureSettings
    split: SplitSettings
    model: ModelSettings
    tuning: TuningSettings
    challenger: ChallengerSettings
    online: OnlineSettings
    evaluation: EvaluationSettings
    gate: GateSettings
    registry: RegistrySettings
    scoring: ScoringSettings
    retraining: RetrainingSettings
    monitoring: MonitoringSettings

    def dbt_vars(self, **extra: Any) -> dict[str, Any]:
        """The vars of every dbt invocation (``extra`` adds run-specific ones)."""
        out: dict[str, Any] = {}
        for var, (section, key) in DBT_VAR_SETTINGS.items():
            value = getattr(getattr(self, section), key)
            out[var] = list(value) if isinstance(value, tuple) else value
        out.update({k: v for k, v in extra.items() if v is not None})
        return out

    def with_dbt_vars(self, overrides: Mapping[str, Any], *, source: str) -> Parameters:
        """These parameters with the settings behind dbt vars replaced by ``overrides``
        (`nextbuy dbt … --vars`), validated as the file is: `--vars '{audience_top_percent:
        0}'` is refused as `scoring.audience_top_percent: 0` would be. Vars no setting
        backs (as_of, partitions, …) are dbt's own and pass through dbt_vars' ``extra``."""
        raw = self.model_dump()
        for var, value in overrides.items():
            if var in DBT_VAR_SETTINGS:
                section, key = DBT_VAR_SETTINGS[var]
                raw[section][key] = value
        return parse_parameters(raw, source=source)

    def suite_parameters(self) -> dict[str, Any]:
        """The values Great Expectations suites reference as ``{"$PARAMETER": name}``."""
        return {
            "sequence_length": self.features.sequence_length,
            "deciles": self.scoring.deciles,
        }


# The dbt vars dbt_vars derives from settings: var -> (section, key).
DBT_VAR_SETTINGS = {
    "target_brands": ("campaign", "target_brands"),
    "sequence_length": ("features", "sequence_length"),
    "examples": ("features", "examples"),
    "audience_top_percent": ("scoring", "audience_top_percent"),
}


class ParametersError(ValueError):
    """The parameters file is missing, unreadable or invalid; the message names the setting."""


def parameters_path() -> Path:
    return Path(os.environ.get("NEXTBUY_PARAMETERS", DEFAULT_PARAMETERS))


def load_parameters(path: Path | None = None) -> Parameters:
    """Read and validate the parameters file (``NEXTBUY_PARAMETERS`` or parameters.yaml)."""
    path = Path(path or parameters_path())
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ParametersError(f"{path}: cannot read the parameters file ({e})") from e
    except yaml.YAMLError as e:
        raise ParametersError(f"{path}: not valid YAML ({e})") from e
    return parse_parameters(raw, source=str(path))


def parse_parameters(raw: Any, *, source: str = "parameters") -> Parameters:
    """Validate a parsed parameters mapping; errors list every bad setting by its path."""
    if not isinstance(raw, Mapping):
        raise ParametersError(f"{source}: expected a mapping of sections at the top level")
    try:
        return Parameters.model_validate(raw)
    except ValidationError as e:
        raise ParametersError(f"{source}: {_describe(e)}") from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        setting = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown setting"
        problems.append(f"{setting}: {message}")
    count = len(problems)
    return f"{count} invalid setting{'s' if count > 1 else ''}: " + "; ".join(problems)

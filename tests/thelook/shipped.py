"""The shipped parameters.yaml's simulation settings and target brands, for thelook tests.

Read straight from the file so that thelook's tests need nothing of orchestration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from thelook.settings import SimulationSettings

PARAMETERS_FILE = Path(__file__).resolve().parents[2] / "parameters.yaml"


def shipped_parameters() -> dict[str, Any]:
    with open(PARAMETERS_FILE, encoding="utf-8") as f:
        params: dict[str, Any] = yaml.safe_load(f)
    return params


def shipped_settings(**overrides: Any) -> SimulationSettings:
    """parameters.yaml's simulation section, with `overrides` applied."""
    settings = SimulationSettings.model_validate(shipped_parameters()["simulation"])
    return settings.with_overrides(**overrides) if overrides else settings


def shipped_target_brands() -> tuple[str, ...]:
    return tuple(shipped_parameters()["campaign"]["target_brands"])

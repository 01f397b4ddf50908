"""Fixtures of the ml tests: parameters.yaml as shipped, and a tiny CatBoost setting."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from orchestration.parameters import DEFAULT_PARAMETERS


@pytest.fixture(scope="session")
def parameters() -> dict[str, Any]:
    with open(DEFAULT_PARAMETERS, encoding="utf-8") as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture
def small_model_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The model section with a tiny, fast CatBoost (the rest as in parameters.yaml)."""
    section = dict(parameters["model"])
    section["catboost"] = {
        **section["catboost"],
        "iterations": 50,
        "learning_rate": 0.2,
        "early_stopping_rounds": 10,
        "thread_count": 1,
    }
    return section

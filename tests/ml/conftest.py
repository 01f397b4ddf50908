"""Fixtures of the ml tests: parameters.yaml as shipped, and a tiny CatBoost setting."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from orchestration.settings import DEFAULT_PARAMETERS


@pytest.fixture(scope="session")
def parameters() -> dict[str, Any]:
    with open(DEFAULT_PARAMETERS, encoding="utf-8") as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture
def model_kwargs(parameters: dict[str, Any]) -> dict[str, Any]:
    """``PropensityModel``'s keyword arguments as parameters.yaml's ``model`` section sets them."""
    section = parameters["model"]
    return {
        "categorical_features": list(section["categorical_features"]),
        "numeric_features": list(section["numeric_features"]),
        "text_features": list(section["text_features"]),
        "catboost_params": dict(section["catboost"]),
        "missing_category": str(section["missing_category"]),
        "correct_class_weights": bool(section["correct_class_weights"]),
    }


@pytest.fixture
def small_model_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same keyword arguments with a tiny, fast CatBoost."""
    return {
        **model_kwargs,
        "catboost_params": {
            **model_kwargs["catboost_params"],
            "iterations": 50,
            "learning_rate": 0.2,
            "early_stopping_rounds": 10,
            "thread_count": 1,
        },
    }

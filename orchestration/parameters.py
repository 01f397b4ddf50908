"""Reads the versioned parameters file (parameters.yaml at the project root)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMETERS = PROJECT_ROOT / "parameters.yaml"


def parameters_path() -> Path:
    return Path(os.environ.get("NEXTBUY_PARAMETERS", DEFAULT_PARAMETERS))


def load_parameters(path: Path | None = None) -> dict[str, Any]:
    path = path or parameters_path()
    with open(path, encoding="utf-8") as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return params


def target_brands(params: dict[str, Any]) -> list[str]:
    brands = params["campaign"]["target_brands"]
    if not brands or not all(isinstance(b, str) and b for b in brands):
        raise ValueError("campaign.target_brands must be a non-empty list of brand names")
    return list(brands)

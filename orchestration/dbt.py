"""The dbt project as this package runs it: one place that knows its folder, its profile,
which warehouse it opens and which vars it gets from parameters.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestration.environment import TELEMETRY_OFF, Environment, current_environment
from orchestration.parameters import PROJECT_ROOT, load_parameters, target_brands

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class DbtError(RuntimeError):
    """A dbt command failed; its output says which model or test."""


def dbt_vars(params: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The vars every dbt invocation gets: parameters.yaml, translated once."""
    features = params["features"]
    out: dict[str, Any] = {
        "target_brands": target_brands(dict(params)),
        "sequence_length": int(features["sequence_length"]),
        "examples": features["examples"],
        "audience_top_percent": float(params["scoring"]["audience_top_percent"]),
    }
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def dbt_env(env: Environment, warehouse: Path | None = None, as_of: Any = None) -> dict[str, str]:
    """Process environment for dbt: the warehouse, the target, the as-of date, telemetry off.

    dbt's artefacts and logs go beside the warehouse (all local state under one folder),
    and the as-of date travels as NEXTBUY_AS_OF rather than a var: it changes every day,
    and a changed var makes dbt re-parse the whole project, an env var only the files
    that read it.
    """
    warehouse = (warehouse or env.warehouse_path).resolve()
    out = dict(os.environ)
    out.update(TELEMETRY_OFF)
    out["NEXTBUY_WAREHOUSE"] = str(warehouse)
    out.setdefault("NEXTBUY_DBT_TARGET", "bigquery" if env.name == "production" else "local")
    out.setdefault("DBT_TARGET_PATH", str(warehouse.parent / "dbt" / "target"))
    out.setdefault("DBT_LOG_PATH", str(warehouse.parent / "dbt" / "logs"))
    if as_of is not None:
        out["NEXTBUY_AS_OF"] = str(as_of)
    return out


def dbt_executable() -> str:
    """The dbt of this interpreter's environment, whatever PATH says."""
    return str(Path(sys.executable).parent / "dbt")


def run_dbt(
    args: Sequence[str],
    *,
    warehouse: Path | None = None,
    vars: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    check: bool = True,
    capture: bool = False,
    with_vars: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <args>` in the project folder with the parameters file as vars."""
    env = current_environment()
    command = [
        dbt_executable(),
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    vars = dict(vars or {})
    as_of = vars.pop("as_of", None)
    if with_vars:
        all_vars = dbt_vars(params or load_parameters(), **vars)
        command += ["--vars", json.dumps(all_vars, default=str)]
    result = subprocess.run(
        command,
        cwd=DBT_PROJECT_DIR,
        env=dbt_env(env, warehouse, as_of),
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        detail = (result.stdout or "")[-4000:] if capture else "see the output above"
        raise DbtError(f"dbt {' '.join(args)} failed ({detail})")
    return result


def lint_sql(paths: Sequence[str] | None = None) -> list[str]:
    """sqlfluff with the dbt templater over the project; returns the violations.

    The templater renders models as dbt would, so it needs the same vars; they come from
    parameters.yaml here rather than being copied into .sqlfluff.
    """
    import tempfile

    from sqlfluff.core import FluffConfig, Linter
    from sqlfluff.core.config import load_config_up_to_path

    from thelook.warehouse import connect

    # Models and singular tests; generic tests and macros are Jinja, not SQL.
    paths = paths or [
        "models",
        *(f"tests/{p.name}" for p in (DBT_PROJECT_DIR / "tests").glob("*.sql")),
    ]
    configs = load_config_up_to_path(str(DBT_PROJECT_DIR / "models"))
    configs.setdefault("templater", {}).setdefault("dbt", {})["context"] = dbt_vars(
        load_parameters()
    )
    previous_dir, previous_env = Path.cwd(), dict(os.environ)
    # Rendering opens the warehouse; an empty one of our own keeps linting independent
    # of whatever state the developer has.
    with tempfile.TemporaryDirectory() as scratch:
        warehouse = Path(scratch) / "lint.duckdb"
        connect(warehouse).close()
        os.environ.update(dbt_env(current_environment(), warehouse))
        os.chdir(DBT_PROJECT_DIR)
        try:
            result = Linter(config=FluffConfig(configs=configs)).lint_paths(tuple(paths))
        finally:
            os.chdir(previous_dir)
            os.environ.clear()
            os.environ.update(previous_env)
    return [
        f"{record['filepath']}:{v['start_line_no']}: {v['code']} {v['description']}"
        for record in result.as_records()
        for v in record["violations"]
    ]

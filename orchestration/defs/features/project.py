"""The dbt project, as Dagster sees it: one small module (dagster-dbt's DbtProject).

dbt's artefacts (manifest.json, partial-parse state) live beside the warehouse under
NEXTBUY_HOME, never in the source tree, and the manifest is made on demand: a fresh
clone, or a changed model, gets a `dbt parse` before the definitions load.
"""

from __future__ import annotations

from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.dbt import DBT_PROJECT_DIR, dbt_env
from orchestration.environment import Environment, current_environment


def dbt_target_path(env: Environment) -> Path:
    return Path(dbt_env(env)["DBT_TARGET_PATH"])


def dbt_project(env: Environment | None = None) -> DbtProject:
    env = env or current_environment()
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        target_path=dbt_target_path(env),
        profiles_dir=DBT_PROJECT_DIR,
        target="bigquery" if env.name == "production" else "local",
    )


def _newest_source_change() -> float:
    files = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.rglob("*.sql")]
    files += [*DBT_PROJECT_DIR.rglob("*.yml"), *DBT_PROJECT_DIR.rglob("*.md")]
    return max(f.stat().st_mtime for f in files if "target" not in f.parts)


def prepare_manifest(env: Environment | None = None) -> Path:
    """manifest.json for the current sources, parsing only when it is missing or stale."""
    from orchestration.dbt import run_dbt

    env = env or current_environment()
    project = dbt_project(env)
    manifest = project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_change():
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    # run_dbt passes parameters.yaml as vars, as every build does.
    run_dbt(["parse", "--quiet"], capture=True)
    if not manifest.exists():
        raise FileNotFoundError(f"dbt parse did not write {manifest}")
    return manifest

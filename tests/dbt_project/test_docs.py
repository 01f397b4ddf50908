"""The dbt docs site (and what Dagster takes from the same manifest) explains the project
to an analyst: an overview page, every raw column, every data test, every exposure with
its owner and a link.

One `dbt parse` for the module; every check reads its manifest.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from orchestration.dbt import run_dbt
from orchestration.settings import load_parameters
from tests.dbt_project.conftest import dbt_target
from thelook.warehouse import connect

PROJECT = "nextbuy"

# The docs site's sidebar shows a label as two flex items, all but the last 15 characters
# and those 15 (dbt's index.html, directive modelTreeLine); a space at either side of that
# split is dropped ("Brand offer e-mail campaign" read "Brand offere-mail campaign").
SIDEBAR_TAIL = 15


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    warehouse = tmp_path_factory.mktemp("docs") / "warehouse.duckdb"
    run_dbt(["parse"], warehouse=warehouse)
    manifest: dict[str, Any] = json.loads((dbt_target(warehouse) / "manifest.json").read_text())
    return manifest


def _tests(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "test"}


def test_the_overview_page_explains_the_project_and_its_links_resolve(
    manifest: dict[str, Any],
) -> None:
    # The project's own __overview__ replaces dbt's default (doc.dbt.__overview__).
    overview = manifest["docs"][f"doc.{PROJECT}.__overview__"]["block_contents"]
    for name in ("customer_features", "training_examples", "campaign_audience"):
        assert f"#!/model/model.{PROJECT}.{name})" in overview, f"no link to {name}"
    for words in ("point in time", "incremental by raw day"):
        assert words in " ".join(overview.split()), words
    # Every docs-site route in the page leads somewhere.
    known = {*manifest["nodes"], *manifest["sources"], *manifest["exposures"]}
    source_names = {s["source_name"] for s in manifest["sources"].values()}
    links = re.findall(r"\(#!/(\w+)/([^)]+)\)", overview)
    assert len(links) >= 5, links
    for route, target in links:
        if route == "source_list":
            assert target in source_names, target
        else:
            assert target in known and target.startswith(f"{route}."), (route, target)


def test_every_raw_column_is_declared_and_described(
    manifest: dict[str, Any], tmp_path: Path
) -> None:
    # The warehouse's own raw and meta tables, as the loader creates them.
    con = connect(tmp_path / "warehouse.duckdb")
    rows = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('raw', 'meta')"
    ).fetchall()
    con.close()
    actual: dict[tuple[str, str], set[str]] = {}
    for schema, table, column in rows:
        actual.setdefault((schema, table), set()).add(column)

    sources = manifest["sources"].values()
    assert len(sources) >= 7
    for source in sources:
        columns = source["columns"]
        assert columns, f"{source['unique_id']} declares no columns"
        undescribed = sorted(c for c, d in columns.items() if not d["description"].strip())
        assert not undescribed, f"{source['unique_id']}: undescribed {undescribed}"
        if source["source_name"] in ("thelook", "thelook_meta"):
            raw = actual[(source["schema"], source["name"])]
            assert set(columns) == raw, (source["unique_id"], sorted(set(columns) ^ raw))


def test_every_exposure_has_an_owner_a_link_and_a_label_the_sidebar_renders(
    manifest: dict[str, Any],
) -> None:
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert set(exposures) == {"next_order_brand_model", "brand_offer_campaign"}
    for name, exposure in exposures.items():
        assert exposure["owner"]["name"] and exposure["owner"]["email"], name
        assert re.fullmatch(r"https?://\S+", exposure["url"] or ""), name
        label = exposure["label"]
        assert label and label.strip() == label, name
        start, end = label[:-SIDEBAR_TAIL], label[-SIDEBAR_TAIL:]
        assert not start.endswith(" ") and not end.startswith(" "), (
            f"{name}: the docs sidebar would render {label!r} as {start.strip() + end.strip()!r}"
        )

    model = exposures["next_order_brand_model"]
    model_name = load_parameters().registry.model_name
    assert model["url"].endswith(f"/#/models/{model_name}"), model["url"]
    assert f"`{model_name}`" in model["description"]
    # True whichever scorer is champion: a CatBoost candidate or the fallback rule.
    description = " ".join(model["description"].split())
    assert "CatBoost" in description and "best rule baseline" in description

    campaign = exposures["brand_offer_campaign"]
    [audience] = campaign["depends_on"]["nodes"]
    assert campaign["url"].endswith(f"#!/model/{audience}"), campaign["url"]
    assert "nextbuy audience --out" in campaign["description"]


def test_every_data_test_has_a_description(manifest: dict[str, Any]) -> None:
    tests = _tests(manifest)
    assert len(tests) >= 100
    undescribed = {n["name"] for n in tests.values() if not n["description"].strip()}
    assert not undescribed, sorted(undescribed)
    # The singular leakage test takes its description from tests/_singular_tests.yml.
    leakage = tests[f"test.{PROJECT}.assert_features_see_only_earlier_purchases"]
    assert leakage["description"].startswith("Leakage test"), leakage["description"][:80]

"""The ML Test Score rubric (orchestration/ml_test_score.py): complete, every reference it
makes resolves in this checkout and a broken one is reported, the README shows what it
renders, the paper's arithmetic, and the MLflow artifacts."""

from __future__ import annotations

import doctest
import json
import shutil
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from orchestration import check_references, ml_test_score
from orchestration.check_references import KINDS, Repository, declared_asset_checks
from orchestration.environment import PROJECT_ROOT
from orchestration.ml_test_score import (
    Kind,
    Rubric,
    RubricError,
    as_json,
    load,
    log_to_mlflow,
    markdown,
    readme_section,
    score,
    verify,
    write_readme,
)

RUBRIC = PROJECT_ROOT / "orchestration" / "ml_test_score.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))


def _write(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_every_test_of_the_paper_is_there_exactly_once_in_its_section() -> None:
    rubric = load()
    ids = [t.id for t in rubric.tests]
    assert len(ids) == len(set(ids)) == 28
    for section in ("data", "model", "infra", "monitor"):
        numbers = sorted(int(t.id.split("-")[1]) for t in rubric.tests if t.section == section)
        assert numbers == list(range(1, 8)), section
    titles = {t.label: t.title for t in rubric.tests}
    assert titles["Data 1"] == "Feature expectations are captured in a schema"
    assert titles["Monitor 7"] == (
        "The model has not experienced a dramatic or slow-leak regression in prediction "
        "quality on served data"
    )
    assert len(set(titles.values())) == 28


def test_the_rubric_is_package_data() -> None:
    packaged = resources.files("orchestration").joinpath("ml_test_score.yaml")
    assert packaged.read_text(encoding="utf-8") == RUBRIC.read_text(encoding="utf-8")
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ml_test_score.yaml" in pyproject["tool"]["setuptools"]["package-data"]["orchestration"]


def test_the_kinds_of_the_rubric_are_the_kinds_that_resolve() -> None:
    assert set(get_args(Kind)) == set(KINDS)


def test_every_reference_resolves_in_this_checkout() -> None:
    assert verify() == []


def test_a_broken_reference_in_a_copy_of_the_rubric_is_reported(tmp_path: Path) -> None:
    raw = _raw()
    tests = {t["id"]: t for t in raw["tests"]}
    tests["infra-1"]["checks"][0]["ref"] = "tests/ml/test_model.py::test_no_such_test"
    tests["monitor-7"]["checks"].append({"kind": "code", "ref": "ml.realised:no_such_function"})
    rubric = load(_write(tmp_path / "ml_test_score.yaml", raw))
    problems = verify(PROJECT_ROOT, rubric)
    assert problems == [
        "infra-1: pytest tests/ml/test_model.py::test_no_such_test: "
        "tests/ml/test_model.py defines no test_no_such_test",
        "monitor-7: code ml.realised:no_such_function: ml.realised has no no_such_function",
    ]


@pytest.mark.parametrize(
    ("kind", "ref", "why"),
    [
        ("dbt_test", "training_examples.order_id.accepted_values", "has no test accepted_values"),
        ("dbt_test", "int_orders.contract", "has no enforced contract"),
        ("dbt_test", "assert_nothing", "no singular dbt test"),
        ("gx_expectation", "training_examples.expect_column_mean_to_be_between.city", "on city"),
        ("gx_expectation", "no_suite.expect_table_row_count_to_be_between", "no suite"),
        ("pytest", "tests/ml/test_nothing.py::test_x", "does not exist"),
        ("pytest", "tests/ml/test_gate.py::helper", "not collected"),
        ("asset_check", "gx_raw_users", "no asset check"),
        ("gate_rule", "ml.gate:promote_anyway", "defines no promote_anyway"),
        ("gate_rule", "parameters:gate.bonus", "has no gate.bonus"),
        ("code", "ml.no_module:thing", "cannot import ml.no_module"),
        ("doc", "benchmarks/README.md#GPU training", "does not say"),
    ],
)
def test_each_kind_reports_a_missing_check(kind: str, ref: str, why: str) -> None:
    problem = Repository(PROJECT_ROOT).problem(kind, ref)
    assert problem is not None and why in problem


def test_parametrised_node_ids_and_test_methods_resolve(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "class TestGroup:\n    def test_inner(self): ...\n\ndef test_outer(n): ...\n"
    )
    repository = Repository(tmp_path)
    assert repository.problem("pytest", "tests/test_x.py::test_outer[3-a]") is None
    assert repository.problem("pytest", "tests/test_x.py::TestGroup::test_inner") is None
    assert repository.problem("pytest", "tests/test_x.py::TestGroup::test_outer") is not None


def test_asset_checks_are_found_where_they_are_declared_and_only_there(tmp_path: Path) -> None:
    defs = PROJECT_ROOT / "orchestration" / "defs"
    found = declared_asset_checks(defs)
    assert {
        "gx_training_examples",
        "gx_customer_features",
        "gx_customer_scores",
        "drift",
        "performance",
    } <= found
    # A job that selects a check by its key does not declare it: drop the suite check of
    # customer_features and only its declaration is gone.
    copy = tmp_path / "defs"
    shutil.copytree(defs, copy)
    checks = copy / "quality" / "checks.py"
    text = checks.read_text(encoding="utf-8")
    declaration = (
        '    SuiteCheck(CUSTOMER_FEATURES_KEY, "customer_features", "marts.customer_features"),\n'
    )
    assert declaration in text
    checks.write_text(text.replace(declaration, ""), encoding="utf-8")
    assert declared_asset_checks(copy) == found - {"gx_customer_features"}


def test_an_incomplete_or_inconsistent_rubric_is_refused_by_name(tmp_path: Path) -> None:
    raw = _raw()
    raw["tests"] = [t for t in raw["tests"] if t["id"] != "model-4"]
    with pytest.raises(RubricError, match=r"missing \['model-4'\]"):
        load(_write(tmp_path / "missing.yaml", raw))
    raw = _raw()
    raw["tests"][0]["section"] = "model"
    with pytest.raises(RubricError, match="data-1 is not a test of section model"):
        load(_write(tmp_path / "section.yaml", raw))
    raw = _raw()
    unexplained = next(t for t in raw["tests"] if t["status"] == "not automated")
    del unexplained["reason"]
    with pytest.raises(RubricError, match="gives a reason"):
        load(_write(tmp_path / "reason.yaml", raw))
    raw = _raw()
    raw["tests"][0]["checks"][0]["kind"] = "sql"
    with pytest.raises(RubricError, match=r"tests\.0\.checks\.0\.kind"):
        load(_write(tmp_path / "kind.yaml", raw))
    raw = _raw()
    manual = next(t for t in raw["tests"] if t["status"] == "manual")
    manual["checks"] = [c for c in manual["checks"] if c["kind"] != "doc"]
    manual["checks"].append({"kind": "code", "ref": "ml.gate:decide"})
    with pytest.raises(RubricError, match="where its result is documented"):
        load(_write(tmp_path / "manual.yaml", raw))


def _rubric(statuses: dict[str, list[str]]) -> Rubric:
    """28 tests, the first of each section with the given statuses, the rest not automated."""
    tests = []
    for section in ("data", "model", "infra", "monitor"):
        given = statuses.get(section, [])
        for number in range(1, 8):
            status = given[number - 1] if number <= len(given) else "not automated"
            test: dict[str, Any] = {
                "id": f"{section}-{number}",
                "section": section,
                "title": f"{section} {number}",
                "status": status,
            }
            if status == "not automated":
                test["reason"] = "nothing does"
            else:
                test["how"] = "a check"
                test["checks"] = [{"kind": "doc", "ref": "README.md"}]
            tests.append(test)
    return Rubric.model_validate({"tests": tests})


def test_the_score_is_the_lowest_section_sum_of_one_per_automated_and_half_per_manual() -> None:
    example = _rubric(
        {
            "data": ["automated"] * 7,
            "model": ["manual", "manual", "automated"],
            "infra": ["automated", "automated", "automated", "manual"],
            "monitor": ["not automated", "manual"],
        }
    )
    result = score(example)
    assert result.sections == {"data": 7.0, "model": 2.0, "infra": 3.5, "monitor": 0.5}
    assert result.final == 0.5
    assert score(_rubric({})).final == 0.0
    assert (
        score(
            _rubric(dict.fromkeys(("data", "model", "infra", "monitor"), ["automated"] * 7))
        ).final
        == 7.0
    )
    assert "ML Test Score 0.5: Data 7, Model 2, Infra 3.5, Monitor 0.5" in markdown(example)


def test_this_repositorys_score_is_what_the_rubric_claims() -> None:
    rubric = load()
    result = score(rubric)
    for section, points in result.sections.items():
        tests = [t for t in rubric.tests if t.section == section]
        assert points == sum(
            {"automated": 1, "manual": 0.5, "not automated": 0}[t.status] for t in tests
        )
    assert result.final == min(result.sections.values())


def test_the_readme_shows_the_rendered_rubric() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_section(readme) == markdown(), (
        "README.md is stale: run python -m orchestration.ml_test_score --write-readme"
    )


def test_the_table_has_a_row_per_test_and_the_scores(tmp_path: Path) -> None:
    rendered = markdown()
    rows = [line for line in rendered.splitlines() if line.startswith("| ")]
    assert rows[0] == "| section | test | status | what checks it |"
    assert len(rows) == 1 + 28
    assert all(row.count(" | ") == 3 for row in rows)
    assert f"**{score().line()}.**" in rendered
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\n<!-- ml-test-score:start -->\nold\n<!-- ml-test-score:end -->\n\nend\n"
    )
    assert write_readme(readme) is True
    assert readme_section(readme.read_text()) == rendered
    assert readme.read_text().endswith("<!-- ml-test-score:end -->\n\nend\n")
    assert write_readme(readme) is False


def test_the_rubric_and_scores_are_logged_to_an_mlflow_run(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from orchestration.mlflow_store import artifact_location, local_tracking_uri

    uri = local_tracking_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("rubric", artifact_location=artifact_location(uri))
    run_id = client.create_run(experiment).info.run_id
    log_to_mlflow(client, run_id)
    assert {a.path for a in client.list_artifacts(run_id)} == {
        "ml_test_score.md",
        "ml_test_score.json",
    }
    folder = Path(client.download_artifacts(run_id, "", str(tmp_path / "downloaded")))
    assert (folder / "ml_test_score.md").read_text() == markdown() + "\n"
    logged = json.loads((folder / "ml_test_score.json").read_text())
    assert logged == json.loads(json.dumps(as_json()))
    assert logged["scores"]["final"] == score().final
    assert [t["id"] for t in logged["tests"]][:2] == ["data-1", "data-2"]


def test_the_module_entry_point_verifies_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert ml_test_score.main(["--verify"]) == 0
    assert "every reference resolves" in capsys.readouterr().out
    assert ml_test_score.main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scores"] == score().as_dict()


@pytest.mark.parametrize("module", [ml_test_score, check_references])
def test_docstring_examples_run(module: Any) -> None:
    # orchestration/ is not collected with --doctest-modules (pyproject.toml): run them here.
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0

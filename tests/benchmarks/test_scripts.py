"""The benchmark scripts run as `python benchmarks/X.py`, which puts benchmarks/ first on
sys.path: a script named like one of the project's packages would hide it from every
benchmark that imports the pipeline (benchmarks/serving.py once made the daily loop's
children fail with "'serving' is not a package")."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_benchmark_script_is_named_like_a_package_of_the_project() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages >= {"ml", "orchestration", "serving", "thelook"}, packages
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert scripts, "no benchmark scripts found"
    assert not scripts & packages, sorted(scripts & packages)

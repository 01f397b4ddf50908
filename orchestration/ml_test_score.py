"""nextbuy's ML Test Score: the 28 tests of Breck et al. (2017), the checks of this
repository that carry out each one, and the score they add up to.

A claim such as "training is reproducible" is worth something only while the check that
shows it exists, so the rubric is data (ml_test_score.yaml, package data beside this
module) whose every reference `verify()` resolves against the checkout, and the README's
section is `markdown()` verbatim; tests/orchestration/test_ml_test_score.py holds both,
so neither can go stale without failing CI. A test nothing automates says so, with the
reason and what it would take: the rubric is a to-do list as much as a grade.

Scoring as the paper defines it: a test earns 0.5 when it is done by hand with its result
documented, 1 when it is automated and run repeatedly; a section's score is the sum over
its seven tests, and the ML Test Score is the lowest section score, because a system must
attend to every section to raise it.

After editing the YAML: ``python -m orchestration.ml_test_score --write-readme``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestration.check_references import Repository
from orchestration.environment import PROJECT_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient

PAPER = (
    "Breck, Cai, Nielsen, Salib, Sculley: The ML Test Score: A Rubric for ML Production "
    "Readiness and Technical Debt Reduction (IEEE Big Data 2017)"
)
PAPER_URL = "https://research.google.com/pubs/pub45742.html"
RUBRIC_FILE = "ml_test_score.yaml"
README_START = "<!-- ml-test-score:start -->"
README_END = "<!-- ml-test-score:end -->"
MARKDOWN_ARTIFACT = "ml_test_score.md"
JSON_ARTIFACT = "ml_test_score.json"

Section = Literal["data", "model", "infra", "monitor"]
Status = Literal["automated", "manual", "not automated"]
Kind = Literal["dbt_test", "gx_expectation", "pytest", "asset_check", "gate_rule", "code", "doc"]

# The paper's four sections, in its order, with the label its tests carry ("Infra 3").
SECTIONS: dict[str, tuple[str, str]] = {
    "data": ("Features and Data", "Data"),
    "model": ("Model Development", "Model"),
    "infra": ("ML Infrastructure", "Infra"),
    "monitor": ("Monitoring", "Monitor"),
}
TESTS_PER_SECTION = 7
POINTS: dict[str, float] = {"automated": 1.0, "manual": 0.5, "not automated": 0.0}
# How each kind of check is introduced in the README's table.
KIND_LABELS: dict[str, str] = {
    "dbt_test": "dbt",
    "gx_expectation": "GX",
    "pytest": "pytest",
    "asset_check": "asset check",
    "gate_rule": "gate",
    "code": "code",
    "doc": "documented in",
}


class _Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored claim.
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckRef(_Strict):
    """One check of the repository: its kind and where it is (forms: the YAML's header)."""

    kind: Kind
    ref: str = Field(min_length=1)


class RubricTest(_Strict):
    """One of the paper's tests, its status here, and what carries it out (or why not)."""

    id: str = Field(pattern=r"^(data|model|infra|monitor)-[1-7]$")
    section: Section
    title: str = Field(min_length=1)
    status: Status
    how: str | None = None
    reason: str | None = None
    checks: tuple[CheckRef, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RubricTest:
        if not self.id.startswith(f"{self.section}-"):
            raise ValueError(f"{self.id} is not a test of section {self.section}")
        if self.status == "not automated":
            if not self.reason or self.how:
                raise ValueError("a test that is not automated gives a reason, not a how")
            return self
        if not self.how or self.reason or not self.checks:
            raise ValueError(f"a {self.status} test says how, and names its checks")
        if self.status == "manual" and not any(c.kind == "doc" for c in self.checks):
            raise ValueError("a manual test names where its result is documented (kind doc)")
        return self

    @property
    def label(self) -> str:
        """The paper's name for it, e.g. ``Infra 3``."""
        return f"{SECTIONS[self.section][1]} {self.id.rsplit('-', 1)[1]}"

    @property
    def points(self) -> float:
        return POINTS[self.status]


class Rubric(_Strict):
    tests: tuple[RubricTest, ...]

    @model_validator(mode="after")
    def _complete(self) -> Rubric:
        ids = [t.id for t in self.tests]
        expected = [f"{s}-{n}" for s in SECTIONS for n in range(1, TESTS_PER_SECTION + 1)]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        missing = [i for i in expected if i not in ids]
        if twice or missing:
            raise ValueError(f"every test exactly once: twice {twice}, missing {missing}")
        return self

    def in_order(self) -> list[RubricTest]:
        """Section by section, then by number, as the paper lists them."""
        order = list(SECTIONS)
        return sorted(self.tests, key=lambda t: (order.index(t.section), t.id))


class RubricError(ValueError):
    """The rubric file is unreadable or invalid; the message names the entry."""


def load(path: Path | None = None) -> Rubric:
    """The rubric, validated: the packaged ml_test_score.yaml, or ``path``."""
    source = path or resources.files("orchestration").joinpath(RUBRIC_FILE)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        return Rubric.model_validate(raw)
    except (OSError, yaml.YAMLError) as e:
        raise RubricError(f"{source}: cannot read the rubric ({e})") from e
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or '(top level)'}: {item['msg']}"
            for item in e.errors()
        ]
        raise RubricError(f"{source}: " + "; ".join(problems)) from None


def verify(root: Path = PROJECT_ROOT, rubric: Rubric | None = None) -> list[str]:
    """Every reference of the rubric that does not resolve in the checkout at ``root``,
    as ``<test id>: <kind> <ref>: <why>``; empty when all do."""
    rubric = rubric or load()
    repository = Repository(root)
    return [
        f"{test.id}: {check.kind} {check.ref}: {problem}"
        for test in rubric.in_order()
        for check in test.checks
        if (problem := repository.problem(check.kind, check.ref))
    ]


@dataclass(frozen=True)
class Score:
    """Points per section (sum of its tests) and the final score, the lowest of them.

    >>> score = Score({"data": 2.0, "model": 1.0, "infra": 6.0, "monitor": 6.5})
    >>> score.final, score.line()
    (1.0, 'ML Test Score 1: Data 2, Model 1, Infra 6, Monitor 6.5 (each of 7)')
    """

    sections: dict[str, float]

    @property
    def final(self) -> float:
        return min(self.sections.values())

    def line(self) -> str:
        parts = ", ".join(f"{SECTIONS[s][1]} {v:g}" for s, v in self.sections.items())
        return f"ML Test Score {self.final:g}: {parts} (each of {TESTS_PER_SECTION})"

    def as_dict(self) -> dict[str, float]:
        return {**self.sections, "final": self.final}


def score(rubric: Rubric | None = None) -> Score:
    """The paper's scores: 1 per automated test, 0.5 per manual one, summed per section."""
    rubric = rubric or load()
    return Score(
        {s: sum(t.points for t in rubric.tests if t.section == s) for s in SECTIONS},
    )


def markdown(rubric: Rubric | None = None) -> str:
    """The rubric as a table (section, test, status, what checks it) and the scores: the
    README's section and the MLflow artifact."""
    rubric = rubric or load()
    lines = [
        "| section | test | status | what checks it |",
        "|---|---|---|---|",
    ]
    for test in rubric.in_order():
        status = f"{test.status} ({test.points:g})"
        lines.append(
            f"| {SECTIONS[test.section][0]} | **{test.label}** {test.title} | {status} "
            f"| {_cell(test)} |"
        )
    result = score(rubric)
    lines += [
        "",
        f"**{result.line()}.** A test scores 1 when automated and run repeatedly, 0.5 when "
        "done by hand with its result documented; the ML Test Score is the lowest section.",
    ]
    return "\n".join(lines)


def _cell(test: RubricTest) -> str:
    text = (test.how if test.status != "not automated" else test.reason) or ""
    kinds: dict[str, list[str]] = {}
    for check in test.checks:
        kinds.setdefault(check.kind, []).append(_code_span(check.ref))
    refs = "; ".join(f"{KIND_LABELS[k]}: {', '.join(v)}" for k, v in kinds.items())
    if refs:
        text += f" {'What exists' if test.status == 'not automated' else 'Checks'}: {refs}."
    return " ".join(text.split()).replace("|", "\\|")


def _code_span(text: str) -> str:
    """``text`` as inline code, even when it holds a backtick."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def as_json(rubric: Rubric | None = None) -> dict[str, Any]:
    """The rubric and its scores as plain JSON values (the MLflow artifact)."""
    rubric = rubric or load()
    return {
        "rubric": PAPER,
        "scores": score(rubric).as_dict(),
        "tests": [
            {"label": t.label, "points": t.points, **t.model_dump(exclude_none=True)}
            for t in rubric.in_order()
        ],
    }


def log_to_mlflow(client: MlflowClient, run_id: str, rubric: Rubric | None = None) -> None:
    """Attach the rubric to a run as ``ml_test_score.md`` and ``ml_test_score.json``, so a
    model version says how production-ready the code that trained it claimed to be.

    The rubric is logged as declared, not verified here: a training process may run from
    an installed package without tests/ beside it, and verification is the test suite's
    job on the same commit.
    """
    rubric = rubric or load()
    client.log_text(run_id, markdown(rubric) + "\n", MARKDOWN_ARTIFACT)
    client.log_dict(run_id, as_json(rubric), JSON_ARTIFACT)


def readme_section(text: str) -> str:
    """What a README holds between the ml-test-score markers."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"no {README_START} ... {README_END} section")
    return text[start + len(README_START) : end].strip("\n")


def write_readme(path: Path = PROJECT_ROOT / "README.md", rubric: Rubric | None = None) -> bool:
    """Replace the README's section with `markdown()`; True when it changed."""
    text = path.read_text(encoding="utf-8")
    old = readme_section(text)
    new = markdown(rubric)
    if old == new:
        return False
    start = text.index(README_START) + len(README_START)
    path.write_text(f"{text[:start]}\n{new}\n{text[text.index(README_END) :]}", encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.ml_test_score", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--write-readme", action="store_true", help="update README.md")
    parser.add_argument("--verify", action="store_true", help="resolve every reference")
    parser.add_argument("--json", action="store_true", help="print the JSON artifact")
    args = parser.parse_args(argv)
    if args.verify:
        problems = verify()
        print("\n".join(problems) or f"every reference resolves; {score().line()}")
        return 1 if problems else 0
    if args.write_readme:
        changed = write_readme()
        print(f"README.md {'updated' if changed else 'already up to date'}: {score().line()}")
        return 0
    print(json.dumps(as_json(), indent=2) if args.json else markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

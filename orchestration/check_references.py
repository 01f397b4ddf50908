"""Whether a check that orchestration/ml_test_score.yaml names still exists.

The rubric is only as good as its references: a renamed test or a dropped expectation
must fail the test suite, not leave the README claiming a check that is gone. One
resolver per kind of reference says why a reference does not resolve (None when it
does). They read the repository's files (Python's ast, the dbt YAML, the GX JSON)
instead of running the tools the checks belong to: dbt and Great Expectations need a
warehouse, and importing orchestration/defs/ parses the dbt project, so running them
would make a check of the rubric take minutes. Only `code` references are imported: an
import is the one proof that a dotted path still resolves.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

# The kinds of reference; their forms are listed at the top of ml_test_score.yaml.
KINDS = ("dbt_test", "gx_expectation", "pytest", "asset_check", "gate_rule", "code", "doc")


@dataclass(frozen=True)
class DbtModel:
    contract: bool = False
    tests: set[str] = field(default_factory=set)
    columns: dict[str, set[str]] = field(default_factory=dict)


class Repository:
    """The checkout a rubric is verified against; what several references need (the dbt
    project's tests, the declared asset checks) is read once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def problem(self, kind: str, ref: str) -> str | None:
        """Why ``ref`` of ``kind`` does not resolve here, or None when it does."""
        resolvers: dict[str, Callable[[str], str | None]] = {
            "dbt_test": self._dbt_test,
            "gx_expectation": self._gx_expectation,
            "pytest": self._pytest,
            "asset_check": self._asset_check,
            "gate_rule": self._gate_rule,
            "code": _code,
            "doc": self._doc,
        }
        if kind not in resolvers:
            return f"unknown kind {kind!r}"
        return resolvers[kind](ref)

    # dbt: the models' YAML properties and the singular tests, as dbt would read them.

    @cached_property
    def dbt_models(self) -> dict[str, DbtModel]:
        models: dict[str, DbtModel] = {}
        for path in sorted((self.root / "dbt_project" / "models").rglob("*.yml")):
            properties = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for model in properties.get("models") or []:
                contract = (model.get("config") or {}).get("contract") or {}
                models[model["name"]] = DbtModel(
                    contract=contract.get("enforced") is True,
                    tests=set(_test_names(model)),
                    columns={c["name"]: set(_test_names(c)) for c in model.get("columns") or []},
                )
        return models

    @cached_property
    def dbt_singular_tests(self) -> set[str]:
        return {path.stem for path in (self.root / "dbt_project" / "tests").glob("*.sql")}

    def _dbt_test(self, ref: str) -> str | None:
        parts = ref.split(".")
        if len(parts) == 1:
            return None if ref in self.dbt_singular_tests else f"no singular dbt test {ref}"
        model = self.dbt_models.get(parts[0])
        if model is None or len(parts) > 3:
            return f"no dbt model {parts[0]}" if model is None else f"not a dbt test: {ref}"
        if parts[1:] == ["contract"]:
            return None if model.contract else f"{parts[0]} has no enforced contract"
        if len(parts) == 2:
            return None if parts[1] in model.tests else f"{parts[0]} has no test {parts[1]}"
        column, test = parts[1:]
        if column not in model.columns:
            return f"{parts[0]} has no column {column}"
        return None if test in model.columns[column] else f"{parts[0]}.{column} has no test {test}"

    def _gx_expectation(self, ref: str) -> str | None:
        suite, _, rest = ref.partition(".")
        expectation, _, column = rest.partition(".")
        path = self.root / "expectations" / f"{suite}.json"
        if not path.is_file():
            return f"no suite expectations/{suite}.json"
        for entry in json.loads(path.read_text(encoding="utf-8"))["expectations"]:
            if entry["type"] == expectation and column in ("", entry["kwargs"].get("column")):
                return None
        on = f" on {column}" if column else ""
        return f"suite {suite} has no {expectation}{on}"

    def _pytest(self, ref: str) -> str | None:
        path, _, node = ref.partition("::")
        if not node:
            return f"not a node id (path::test_name): {ref}"
        file = self.root / path
        if not file.is_file():
            return f"{path} does not exist"
        names = node.split("::")
        names[-1] = names[-1].split("[", 1)[0]  # a parametrised test's id
        if not names[-1].startswith("test"):
            return f"{names[-1]} is not collected by pytest (no test prefix)"
        return _find(ast.parse(file.read_text(encoding="utf-8")).body, names, path)

    @cached_property
    def asset_checks(self) -> set[str]:
        return declared_asset_checks(self.root / "orchestration" / "defs")

    def _asset_check(self, ref: str) -> str | None:
        return None if ref in self.asset_checks else f"no asset check {ref} in orchestration/defs"

    def _gate_rule(self, ref: str) -> str | None:
        module, _, attribute = ref.partition(":")
        if not attribute:
            return f"not module:attribute or parameters:key: {ref}"
        if module == "parameters":
            value: Any = yaml.safe_load((self.root / "parameters.yaml").read_text("utf-8"))
            for key in attribute.split("."):
                if not isinstance(value, dict) or key not in value:
                    return f"parameters.yaml has no {attribute}"
                value = value[key]
            return None
        base = self.root.joinpath(*module.split("."))
        file = (
            base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        )
        if not file.is_file():
            return f"no module {module}"
        return _find(ast.parse(file.read_text(encoding="utf-8")).body, attribute.split("."), module)

    def _doc(self, ref: str) -> str | None:
        path, _, text = ref.partition("#")
        file = self.root / path
        if not file.is_file():
            return f"{path} does not exist"
        return None if text in file.read_text(encoding="utf-8") else f"{path} does not say {text!r}"


def _code(ref: str) -> str | None:
    module, _, attribute = ref.partition(":")
    if not attribute:
        return f"not module:attribute: {ref}"
    try:
        value: Any = importlib.import_module(module)
    except ImportError as e:
        return f"cannot import {module} ({e})"
    for part in attribute.split("."):
        if not hasattr(value, part):
            return f"{module} has no {attribute}"
        value = getattr(value, part)
    return None


def _test_names(node: dict[str, Any]) -> Iterable[str]:
    """The tests of a model or column: `- unique`, `- unique: {...}` or `- test_name: x`."""
    for entry in node.get("data_tests") or node.get("tests") or []:
        if isinstance(entry, str):
            yield entry
        elif "test_name" in entry:
            yield entry["test_name"]
        else:
            yield from entry


def _find(scope: list[ast.stmt], names: list[str], where: str) -> str | None:
    """Whether ``names`` (a class, then its method, ...) are defined in ``scope``."""
    for name in names:
        found = next((node for node in scope if name in _defined(node)), None)
        if found is None:
            return f"{where} defines no {'.'.join(names)}"
        scope = getattr(found, "body", [])
    return None


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return {node.target.id}
    return set()


# Asset checks. Their names are seldom literals where they are declared (the GX checks
# are `check_name(spec.suite)` in a factory over SUITE_CHECKS, the drift check is
# `DRIFT_CHECK.name`), so the declared names are worked out from the source: module
# constants, one-argument f-string functions such as check_name, and the literal values a
# dataclass is built with, for a factory's parameter annotated with that dataclass.


def declared_asset_checks(folder: Path) -> set[str]:
    """The names given to `asset_check(name=...)` and `AssetCheckSpec(...)` under ``folder``.

    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "checks.py").write_text(
    ...         'KEY = dg.AssetCheckKey(ASSET, "drift")\\nspec = dg.AssetCheckSpec(KEY.name)\\n'
    ...     )
    ...     sorted(declared_asset_checks(Path(d)))
    ['drift']
    """
    modules = [ast.parse(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.py"))]
    templates: dict[str, Callable[[str], str]] = {}
    fields: dict[str, list[str]] = {}
    for module in modules:
        for node in module.body:
            if isinstance(node, ast.FunctionDef) and (template := _template(node)):
                templates[node.name] = template
            elif isinstance(node, ast.ClassDef) and any(
                "dataclass" in ast.unparse(d) for d in node.decorator_list
            ):
                fields[node.name] = [
                    s.target.id
                    for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                ]
    built: dict[tuple[str, str], set[str]] = {}
    for module in modules:
        for call in ast.walk(module):
            if isinstance(call, ast.Call) and (cls := _callee(call)) in fields:
                named = dict(zip(fields[cls], call.args, strict=False))
                named.update({k.arg: k.value for k in call.keywords if k.arg})
                for name, value in named.items():
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        built.setdefault((cls, name), set()).add(value.value)
    names: set[str] = set()
    for module in modules:
        constants = {
            target.id: node.value
            for node in module.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        names |= _Declarations(constants, templates, built).collect(module)
    return names


def _template(function: ast.FunctionDef) -> Callable[[str], str] | None:
    """``def f(x): return f"gx_{x}"`` as a function of its argument, else None."""
    arguments = function.args.args
    last = function.body[-1]
    if len(arguments) != 1 or not isinstance(last, ast.Return):
        return None
    if not isinstance(last.value, ast.JoinedStr):
        return None
    parts: list[str | None] = []  # None: the argument
    for part in last.value.values:
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
        elif (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Name)
            and part.value.id == arguments[0].arg
            and part.format_spec is None
            and part.conversion == -1
        ):
            parts.append(None)
        else:
            return None
    return lambda value: "".join(value if p is None else p for p in parts)


def _callee(call: ast.Call) -> str:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def _name_argument(call: ast.Call) -> ast.expr | None:
    """The check name a declaring call is given (asset_check's keyword, the spec's first
    argument, the key's second)."""
    position = {"asset_check": None, "AssetCheckSpec": 0, "AssetCheckKey": 1}[_callee(call)]
    keyword = next((k.value for k in call.keywords if k.arg == "name"), None)
    if keyword is not None or position is None:
        return keyword
    return call.args[position] if len(call.args) > position else None


@dataclass
class _Declarations:
    constants: dict[str, ast.expr]
    templates: dict[str, Callable[[str], str]]
    built: dict[tuple[str, str], set[str]]

    def collect(self, module: ast.Module) -> set[str]:
        names: set[str] = set()
        self._visit(module, {}, names)
        return names

    def _visit(self, node: ast.AST, parameters: dict[str, str], names: set[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            annotated = {
                a.arg: ast.unparse(a.annotation).strip("'\"").rsplit(".", 1)[-1]
                for a in node.args.args
                if a.annotation is not None
            }
            parameters = {**parameters, **annotated}
        if isinstance(node, ast.Call) and _callee(node) in ("asset_check", "AssetCheckSpec"):
            name = _name_argument(node)
            if name is not None:
                names |= self._values(name, parameters)
        for child in ast.iter_child_nodes(node):
            self._visit(child, parameters, names)

    def _values(self, expr: ast.expr, parameters: dict[str, str], depth: int = 0) -> set[str]:
        """Every string ``expr`` can be, as far as the source says."""
        if depth > 5:
            return set()
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.Name) and expr.id in self.constants:
            return self._values(self.constants[expr.id], parameters, depth + 1)
        if isinstance(expr, ast.Call) and _callee(expr) in self.templates and len(expr.args) == 1:
            template = self.templates[_callee(expr)]
            return {template(v) for v in self._values(expr.args[0], parameters, depth + 1)}
        if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            owner = expr.value.id
            if owner in parameters:  # a factory's parameter: the dataclass's built values
                return set(self.built.get((parameters[owner], expr.attr), set()))
            key = self.constants.get(owner)
            if (
                expr.attr == "name"
                and isinstance(key, ast.Call)
                and _callee(key) == "AssetCheckKey"
            ):
                name = _name_argument(key)
                return self._values(name, parameters, depth + 1) if name is not None else set()
        return set()

"""dbt's macros and models rendered with plain Jinja, so that their SQL runs in DuckDB
without starting dbt (a test of thelook then costs milliseconds, not a dbt parse).

dbt renders each macro as a template of its own and puts every macro in one namespace;
a macro's `{{ return(x) }}` hands back the object x, not text. `DbtSql` does the same
with the part of dbt's context these models use: `adapter.dispatch` (the adapter's
implementation, else the default), `return`, `source`, `ref`, `var`, `config`,
`target`, `exceptions`, `env_var`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

DBT_PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
_MACRO = re.compile(
    r"{%-?\s*macro\s+(\w+)\s*\(.*?{%-?\s*endmacro\s*-?%}", flags=re.DOTALL | re.IGNORECASE
)


class _MacroReturn(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


def _return(value: object) -> None:
    raise _MacroReturn(value)


class _CompilerError(Exception):
    pass


class DbtSql:
    """Every macro of dbt_project/macros, rendered as dbt-`adapter` (duckdb, bigquery)."""

    def __init__(
        self,
        adapter: str = "duckdb",
        vars: Mapping[str, Any] | None = None,
        relations: Callable[[str, str], str] = lambda source, table: f"{source}.{table}",
    ) -> None:
        self._env = jinja2.Environment(
            extensions=["jinja2.ext.do"], undefined=jinja2.StrictUndefined
        )
        self._adapter = adapter
        self._macros: dict[str, Any] = {}
        known_vars = dict(vars or {})
        self.context: dict[str, Any] = {
            "return": _return,
            "adapter": SimpleNamespace(dispatch=self._dispatch),
            "source": relations,
            "ref": lambda name: name,
            "var": lambda name, default=None: known_vars.get(name, default),
            "config": lambda *args, **kwargs: "",
            "target": SimpleNamespace(type=adapter, database="memory"),
            "env_var": lambda name, default="": os.environ.get(name, default),
            "exceptions": SimpleNamespace(raise_compiler_error=self._raise),
        }
        blocks = [
            (m.group(1), m.group(0))
            for file in sorted((DBT_PROJECT / "macros").glob("*.sql"))
            for m in _MACRO.finditer(file.read_text(encoding="utf-8"))
        ]
        # Every name first, so each macro's template sees all the others.
        for name, _ in blocks:
            self.context[name] = self._caller(name)
        for name, block in blocks:
            module = self._env.from_string(block, globals=self.context).module
            self._macros[name] = getattr(module, name)

    def render(self, sql: str) -> str:
        """A model's or an ad-hoc query's SQL, as dbt would compile it."""
        return self._env.from_string(sql, globals=self.context).render()

    def render_model(self, path: str) -> str:
        return self.render((DBT_PROJECT / "models" / path).read_text(encoding="utf-8"))

    def _caller(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return self._macros[name](*args, **kwargs)
            except _MacroReturn as returned:
                return returned.value

        return call

    def _dispatch(self, name: str, package: str | None = None) -> Callable[..., Any]:
        for prefix in (self._adapter, "default"):
            if f"{prefix}__{name}" in self.context:
                return self.context[f"{prefix}__{name}"]  # type: ignore[no-any-return]
        raise _CompilerError(f"no implementation of macro {name} for {self._adapter}")

    @staticmethod
    def _raise(message: str) -> None:
        raise _CompilerError(message)

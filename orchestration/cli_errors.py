"""What `nextbuy` says when the machine, not the data, is at fault: one line, no traceback.

A wrong environment setting, a warehouse path that is not a DuckDB file, a home folder
that cannot be written, a full disk: each ends the command with exit code 2 (as click's
own refusals of bad options do) and one line naming the setting or path at fault. The
commands themselves stay as they are: the command group catches these at its boundary.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from orchestration.environment import EnvironmentSettingError, current_environment

if TYPE_CHECKING:
    from pydantic import ValidationError

# The OS errors that mean "this path cannot be written here", whoever raised them.
_UNWRITABLE = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM)
_UNWRITABLE_TEXT = tuple(os.strerror(code) for code in _UNWRITABLE)


class Refusal(click.ClickException):
    """A one-line refusal with click's usage exit code."""

    exit_code = 2


class RefusingCommand(click.Command):
    """A click command whose environment and IO failures become `Refusal`s."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EnvironmentSettingError as e:
            raise Refusal(str(e)) from e
        except Exception as e:
            refusal = _unusable_path(e)
            if refusal is None:
                raise
            raise Refusal(refusal + _whose(ctx, refusal)) from e


def _unusable_path(error: Exception) -> str | None:
    """The one line for an error of a path the command cannot use (or write), or None."""
    if isinstance(error, OSError) and error.errno in _UNWRITABLE:
        return f"{error.filename or error}: {error.strerror}"
    # DuckDB is imported only by commands that open a warehouse; only they raise its errors.
    duckdb = sys.modules.get("duckdb")
    if duckdb is None or not isinstance(error, duckdb.Error):
        return None
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    if isinstance(error, duckdb.IOException) or any(r in text for r in _UNWRITABLE_TEXT):
        return _plain(text)
    return None


class RefusingGroup(click.Group):
    """The `nextbuy` group: every command it declares is a `RefusingCommand`."""

    command_class = RefusingCommand


def _plain(text: str) -> str:
    """DuckDB's message without its error-class prefixes ("IO Error: ", ...)."""
    return re.sub(r"^(?:[A-Za-z]+ Error: (?:Failed to commit: )?)+", "", text).rstrip("!")


def _whose(ctx: click.Context, message: str) -> str:
    """Which option or setting chose the path the message names."""
    given = ctx.params.get("warehouse_path")
    if given and str(given) in message:
        return " (the file given as --warehouse)"
    home = current_environment().home
    return f" (under NEXTBUY_HOME, {home})" if str(home) in message else ""


def settings_refusal(error: ValidationError, options: Mapping[str, str]) -> click.BadParameter:
    """A refusal of a settings override, naming the command-line option that gave it
    (`options` maps a settings field to its option)."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return click.BadParameter(message, param_hint=f"'{options.get(field, field)}'")

"""Why an export file cannot be loaded, said in one line that names the file.

The loader's refusals are read by people fixing a file by hand, so each says where (file,
line) and what (the cause), not how DuckDB was called: the header is read here first, so
that the usual mistakes (another delimiter, a blank first line, a broken gzip) are named
as such, and DuckDB's own CSV errors are cut down to the line they name and the reason.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path

import duckdb


class LoadError(ValueError):
    """An export could not be loaded; raw was left exactly as it was."""


# Delimiters people export with by mistake, as a refusal names them.
_OTHER_DELIMITERS = {";": "';'", "\t": "tabs", "|": "'|'"}
# How many lines after a blank first line are looked at for data.
_LOOK_AHEAD_LINES = 5
# DuckDB's "Original Line" can be megabytes (an over-long line); a refusal quotes its start.
_QUOTED_LINE_CHARS = 80


def read_header(path: Path) -> list[str]:
    """The column names of a CSV or gzipped CSV file, lower-cased; a refusal when the
    first line is not a comma-separated header."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        # Bytes, then decoded line by line: a text reader decodes ahead in chunks and would
        # blame the header for a bad byte further down (DuckDB names that one's line).
        with opener(path, "rb") as f:  # type: ignore[operator]
            first = f.readline().decode("utf-8-sig")
            after = [f.readline() for _ in range(_LOOK_AHEAD_LINES)] if not first.strip() else []
    except UnicodeDecodeError as e:
        raise LoadError(f"{path}: line 1 is not UTF-8 text ({e.reason} at byte {e.start})") from e
    except (OSError, EOFError, zlib.error) as e:
        # gzip reports a damaged stream as zlib.error or EOFError, not OSError.
        what = "a readable gzip file" if opener is gzip.open else "readable"
        raise LoadError(f"{path}: not {what}: {e}") from e
    if not first.strip():
        if any(line.strip() for line in after):
            raise LoadError(f"{path}: the first line is blank; the header must be the first line")
        raise LoadError(f"{path}: empty file (no header row)")
    columns = [c.strip().lower() for c in next(csv.reader([first]))]
    if len(columns) == 1:
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in columns[0]:
                raise LoadError(
                    f"{path}: the header is one column holding {name} — "
                    "nextbuy reads comma-separated files"
                )
    return columns


_BOILERPLATE = re.compile(r"^(Possible (fixes|Solution)|\* |\s+\w+ = )")
_LINE = re.compile(r"CSV Error on Line: (\d+)")
_FILE = re.compile(r"^\s+file = (.+)$", re.MULTILINE)


def csv_error(error: duckdb.Error, files: list[Path]) -> str:
    """DuckDB's error reading `files` as one line: the file, the line and the reason.

    DuckDB appends fixes that are about its own parameters (strict_mode, ignore_errors,
    max_line_size) and a dump of them; neither helps someone fixing the file, so both go.

    >>> e = duckdb.InvalidInputException(
    ...     "Invalid Input Error: CSV Error on Line: 3\\nOriginal Line: 2,Chicago IL,extra\\n"
    ...     "Expected Number of Columns: 2 Found: 3\\nPossible fixes:\\n* Enable null padding"
    ...     "\\n\\n  file = x/users.csv\\n  delimiter = , (Set By User)")
    >>> csv_error(e, [Path("x/users.csv")])
    "x/users.csv: line 3: Expected Number of Columns: 2 Found: 3 (the line: '2,Chicago IL,extra')"
    """
    text = str(error).strip()
    named = _FILE.search(text)
    where = named.group(1).strip() if named else ", ".join(str(f) for f in files)
    lines = text.splitlines()
    kept = []
    for line in lines:
        if _BOILERPLATE.match(line):
            break
        kept.append(line)
    line_no = _LINE.search(kept[0]) if kept else None
    if line_no is None:
        # Not a CSV parse error (an IO error: a truncated gzip stream, an unreadable file):
        # its own text, without the path DuckDB repeats at its end.
        message = " ".join(line.strip() for line in kept if line.strip())
        message = re.sub(r"^[A-Za-z ]+Error: ", "", message).removesuffix(f": {where}")
        return f"{where}: not readable as CSV: {message}"
    original = next((line for line in kept if line.startswith("Original Line: ")), None)
    reasons = [
        line.strip()
        for line in kept[1:]
        if line.strip() and line is not original and not line.startswith(" ")
    ]
    # The reason is DuckDB's last sentence; lines before it continue a multi-line original.
    reason = reasons[-1] if reasons else "not valid CSV"
    shown = ""
    if original is not None:
        quoted = original.removeprefix("Original Line: ")
        if len(quoted) > _QUOTED_LINE_CHARS:
            quoted = quoted[:_QUOTED_LINE_CHARS] + "..."
        shown = f" (the line: {quoted!r})"
    return f"{where}: line {line_no.group(1)}: {reason}{shown}"

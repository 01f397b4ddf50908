"""The monitoring report's page: one self-contained HTML file (styles and images inline,
nothing fetched), rendered from what report.py computed."""

from __future__ import annotations

import base64
import datetime as dt
import html
from typing import TYPE_CHECKING

import pandas as pd

from orchestration.defs.monitoring.checks import drifted
from orchestration.defs.monitoring.realised import display_table

if TYPE_CHECKING:
    from orchestration.defs.monitoring.performance import Judgement
    from orchestration.defs.monitoring.realised import Performance
    from orchestration.defs.monitoring.report import DateDrift
    from orchestration.settings import Parameters


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1300px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.ok { color: #2a7a2a; } .warn { color: #b86e00; } .fail { color: #b00020; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def render_html(
    drift: DateDrift,
    performance: Performance,
    judgement: Judgement,
    pngs: dict[str, bytes],
    params: Parameters,
) -> str:
    """The whole page, images inlined, so the one file is the report."""
    monitoring = params.monitoring
    as_of = drift.as_of
    facts = {
        "scored by": drift.model.label(),
        "customers scored": f"{drift.customers:,}",
        "label horizon": f"{monitoring.label_horizon_days} days",
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    sections = [
        f"<h1>nextbuy monitoring as of {as_of}</h1>",
        _facts(facts),
        '<h2 id="drift">Feature drift</h2>',
        _drift_section(drift, pngs),
        '<h2 id="score-distribution">Score distribution</h2>',
        _image(pngs, "score_distribution")
        or f'<p class="note">No reference distribution: drift {html.escape(drift.scope)}.</p>',
        '<h2 id="realised-performance">Realised performance</h2>',
        _performance_section(performance, judgement, pngs, params),
    ]
    title = f"nextbuy monitoring {as_of}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _facts(facts: dict[str, str]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items()
    )
    return f"<table>{rows}</table>"


def _status(status: str) -> str:
    return f'<b class="{html.escape(status)}">{html.escape(status)}</b>'


def _image(pngs: dict[str, bytes], name: str) -> str:
    if name not in pngs:
        return ""
    return f'<p><img alt="{name}" src="{data_uri(pngs[name])}"></p>'


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.3f}", border=0)


def _drift_section(drift: DateDrift, pngs: dict[str, bytes]) -> str:
    report = drift.report
    if report is None:
        return f'<p class="note">Drift {html.escape(drift.scope)}.</p>'
    columns = report.columns.sort_values("psi", ascending=False, na_position="first")
    changed = drifted(report) or "none"
    return "\n".join(
        [
            f"<p>Status {_status(report.status)} against {html.escape(drift.model.label())}'s "
            f"reference, from {html.escape(drift.scope)}. PSI warns at {report.warn_psi:g} "
            f"and fails at {report.fail_psi:g}; drifted: {html.escape(changed)}.</p>",
            _image(pngs, "drift"),
            _table(columns),
        ]
    )


def _performance_section(
    performance: Performance, judgement: Judgement, pngs: dict[str, bytes], params: Parameters
) -> str:
    monitoring = params.monitoring
    lift = performance.lift_column.replace("_", " ")
    return "\n".join(
        [
            f"<p>Check <code>performance</code>: {_status(judgement.status)}. "
            f"{html.escape(judgement.description)}</p>",
            f'<p class="note">A customer scored as of a date is labelled by their next '
            f"purchase if it comes within {monitoring.label_horizon_days} days (1 when it "
            "holds a target brand), as training_examples label a purchase; without one they "
            "are <i>pending</i> until the horizon has passed, then <i>unlabelled</i> (the "
            "score is a probability given a next order). A date is judged from "
            f"{monitoring.min_labelled:,} labelled customers; the dashed lines are the "
            f"scoring model's ROC-AUC and {html.escape(lift)} on its test window.</p>",
            _image(pngs, "realised_performance"),
            _online_note(performance, monitoring.min_labelled),
            _table(display_table(performance)),
        ]
    )


def _online_note(performance: Performance, min_labelled: int) -> str:
    if performance.online.empty:
        return ""
    return (
        '<p class="note">Columns <code>online_*</code>: the scores the online API served '
        "(the latest request of a customer and date), judged the same way, on the dates "
        f"with {min_labelled:,} labelled online customers; the check judges the batch "
        "scores only.</p>"
    )

"""The three UIs of `nextbuy ui`, in a real browser, after a real pipeline run.

One module-scoped setup: a small simulated shop and `nextbuy pipeline` in a temporary
NEXTBUY_HOME, then `nextbuy ui` on free ports (all as subprocesses, as a person would run
them). Each test then opens one page in headless chromium (Debian's, through Playwright's
sync API) and asserts on what a person sees there: the Dagster lineage from raw to
campaign_audience and the candidate's plots, the champion alias and the metrics in MLflow,
the overview and a documented source column in the dbt docs.

A screenshot of every page goes to $NEXTBUY_SCREENSHOTS, by default `.nextbuy/screenshots/`
in the checkout (gitignored, beside the rest of the local state, kept by CI with the
checkout, overwritten by every run); the setup prints the folder.

Skipped when no chromium is installed (`apt-get install chromium`; .ci/run does it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from orchestration.environment import PROJECT_ROOT
from tests.ui.conftest import failed

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium (/usr/bin/chromium or on PATH): `apt-get install chromium`",
    ),
]

BIN = Path(sys.executable).parent
# A shop whose customers are loyal to two favourite brands (as tests/orchestration's
# pipeline test), small and short so the whole setup stays cheap: one year of 6,000
# customers. Most of the setup's time is dbt's and the UIs' start-up, not the data's.
SHOP = {
    "users": 6_000,
    "start": "2023-07-01",
    "end": "2024-06-30",
    "loyalty_alpha": 8.0,
    "loyalty_beta": 1.0,
    "favourite_brands": 2,
}
# Starting the Dagster UI loads every definition in a code server: slow on a busy machine.
UI_START_SECONDS = 240
# Longest wait for something to appear on a page (a first GraphQL query included).
PAGE_TIMEOUT_MS = 60_000
expect.set_options(timeout=PAGE_TIMEOUT_MS)


@dataclass(frozen=True)
class Uis:
    dagster: str
    docs: str
    mlflow: str
    home: Path
    report: dict[str, Any]
    shots: Path

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"))


def _free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _parameters(path: Path) -> Path:
    """parameters.yaml with the small shop, a quicker model and a test window it fills."""
    from orchestration.settings import load_parameters

    params = load_parameters().model_dump(mode="json")
    params["simulation"].update(SHOP)
    params["model"]["catboost"]["iterations"] = 300
    params["evaluation"]["bootstrap_samples"] = 200
    params["split"].update({"test_days": 30, "validation_days": 30, "folds": 2})
    params["tuning"]["trials"] = 1
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _run(args: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [str(BIN / "nextbuy"), *args],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = log.read_text(encoding="utf-8")
    if done.returncode != 0:
        pytest.fail(f"`nextbuy {' '.join(args)}` failed:\n{text[-4000:]}")
    return text


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + UI_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`nextbuy ui` exited:\n{log.read_text(encoding='utf-8')[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(
        f"{url} did not answer within {UI_START_SECONDS} s:\n"
        f"{log.read_text(encoding='utf-8')[-4000:]}"
    )


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting to be reaped do not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the whole process group (`nextbuy ui` and every server it started), as a
    terminal would; then SIGTERM, then SIGKILL to whatever is still running."""
    for sig, seconds in ((signal.SIGINT, 10), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            process.poll()  # reap `nextbuy ui` itself
            if not _group_alive(process.pid):
                return
            time.sleep(0.2)
    process.wait(timeout=5)


def _screenshots() -> Path:
    folder = Path(os.environ.get("NEXTBUY_SCREENSHOTS", PROJECT_ROOT / ".nextbuy" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def uis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uis]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    dagster_port, docs_port, mlflow_port = _free_ports(3)
    mlflow = f"http://127.0.0.1:{mlflow_port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env.update(
        NEXTBUY_HOME=str(home),
        NEXTBUY_PARAMETERS=str(_parameters(root / "parameters.yaml")),
        # Links the pipeline writes into Dagster's metadata point at this MLflow UI.
        NEXTBUY_MLFLOW_UI_URL=mlflow,
    )
    _run(["simulate"], env, root / "simulate.log")
    output = _run(["pipeline"], env, root / "pipeline.log")
    report = json.loads(output.strip().splitlines()[-1])

    log = root / "ui.log"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [
                str(BIN / "nextbuy"),
                "ui",
                "--port",
                str(dagster_port),
                "--docs-port",
                str(docs_port),
                "--mlflow-port",
                str(mlflow_port),
            ],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        urls = Uis(
            dagster=f"http://127.0.0.1:{dagster_port}",
            docs=f"http://127.0.0.1:{docs_port}",
            mlflow=mlflow,
            home=home,
            report=report,
            shots=_screenshots(),
        )
        for stale in urls.shots.glob("failed-*.png"):
            stale.unlink()
        for url in (urls.docs, urls.mlflow, urls.dagster):
            _wait_until_answering(url, process, log)
        print(f"screenshots of the UIs: {urls.shots}")
        yield urls
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


# What a person who has used the UIs once has in local storage: Dagster's newsletter
# dialog answered, MLflow's assistant panel closed. Without it both cover the page.
_SEEN_ONCE = """
window.localStorage.setItem("communityNux", JSON.stringify("1"));
window.localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
window.localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
"""


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context per test; a failed test leaves a screenshot of its page."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script(_SEEN_ONCE)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    if failed(request):
        shot = _screenshots() / f"failed-{request.node.name}.png"
        page.screenshot(path=str(shot))
        print(f"screenshot of the failed test's page: {shot}")
    context.close()


# --- Dagster ---------------------------------------------------------------------------


def test_dagster_lineage_runs_from_raw_to_campaign_audience(page: Page, uis: Uis) -> None:
    # campaign_audience's Lineage tab, upstream, at the greatest depth (its "All"):
    # everything the audience is made from, zoomed to fit.
    page.goto(
        f"{uis.dagster}/assets/marts/campaign_audience"
        "?view=lineage&lineageScope=upstream&lineageDepth=100"
    )
    graph = page.locator("foreignObject")
    expect(graph.get_by_text("campaign_audience", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="All", exact=True)).to_be_disabled()
    # raw -> staging -> intermediate -> marts -> training -> scoring -> audience. Node
    # labels are shortened at this zoom (stg_…__order_items), so staging is matched loosely.
    path: list[str | re.Pattern[str]] = [
        "order_items",
        re.compile(r"^stg_.*order_items$"),
        "int_orders",
        "int_purchase_items",
        "training_examples",
        "candidate_model",
        "champion_model",
        "customer_features",
        "customer_scores",
        "campaign_audience",
    ]
    for node in path:
        expect(graph.get_by_text(node, exact=True).first).to_be_visible()
    page.wait_for_timeout(500)  # the graph's zoom-to-fit animation
    uis.shot(page, "dagster_lineage")


# How Dagster says when something happened ("a few seconds ago", "19 minutes ago").
_AGO = re.compile(r"^(a few seconds|an? \w+|\d+ \w+) ago$")


def _candidate_metadata(page: Page, uis: Uis) -> Locator:
    """candidate_model's page and the table of its latest materialisation's metadata."""
    page.goto(f"{uis.dagster}/assets/candidate_model")
    return page.get_by_role("table").filter(has_text="test_roc_auc")


def _metadata_link(page: Page, metadata: Locator, key: str) -> Locator:
    row = metadata.get_by_role("row").filter(has=page.get_by_role("cell", name=key, exact=True))
    return row.get_by_role("link").first  # the value's text and its "open" icon: one href


def test_dagster_candidate_model_shows_its_plots(page: Page, uis: Uis) -> None:
    metadata = _candidate_metadata(page, uis)
    # The latest materialisation: the model version it registered and its test metrics.
    expect(metadata).to_contain_text(uis.report["candidate"])
    expect(page.get_by_text(_AGO).first).to_be_visible()  # its status has loaded too
    uis.shot(page, "dagster_candidate_model")
    # Markdown entries open in a dialog; a plot is a markdown image of an inline PNG.
    found = None
    markdown = metadata.get_by_text("[Show Markdown]")
    for i in range(markdown.count()):
        markdown.nth(i).click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        image = dialog.locator("img[src^='data:image/png']").first
        try:
            image.wait_for(timeout=2_000)
            found = image
            break
        except PlaywrightTimeout:
            dialog.get_by_role("button", name="Close").click()
            expect(dialog).to_be_hidden()
    assert found is not None, (
        "PLOTS IN METADATA: candidate_model's latest materialisation shows no plot image "
        f"(an <img src='data:image/png;base64,...'> in one of its {markdown.count()} markdown "
        "metadata entries)"
    )
    expect(found).to_be_visible()
    assert found.evaluate("img => img.naturalWidth") > 0, "the plot image does not decode"
    uis.shot(page, "dagster_candidate_plot")


def test_dagster_metadata_links_open_mlflow(page: Page, uis: Uis) -> None:
    metadata = _candidate_metadata(page, uis)
    link = _metadata_link(page, metadata, "mlflow_run")
    expect(link).to_be_visible()
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{uis.mlflow}/"), (
        f"MLFLOW UI LINKS: candidate_model's mlflow_run links to {href!r}, not to the MLflow "
        f"UI that `nextbuy ui` serves ({uis.mlflow}, NEXTBUY_MLFLOW_UI_URL)"
    )
    # Followed, the link shows the candidate's run with its test metrics...
    page.goto(href)
    expect(page.get_by_text(re.compile(r"^(catboost|logistic)-")).first).to_be_visible()
    expect(page.get_by_role("cell", name="roc_auc", exact=True)).to_be_visible()
    # ...and the experiment's link the runs side by side, with metric columns.
    experiment = _metadata_link(page, _candidate_metadata(page, uis), "mlflow_experiment")
    href = experiment.get_attribute("href") or ""
    assert href.startswith(f"{uis.mlflow}/"), href
    page.goto(href)
    expect(page.get_by_role("link", name=re.compile(r"^(catboost|logistic)-"))).to_be_visible()
    expect(page.get_by_role("columnheader", name="Metrics", exact=True).first).to_be_visible()
    expect(page.get_by_role("columnheader", name="roc_auc", exact=True).first).to_be_visible()
    uis.shot(page, "mlflow_runs_view")


# --- MLflow ----------------------------------------------------------------------------


def test_mlflow_registered_model_shows_the_champion_alias(page: Page, uis: Uis) -> None:
    from orchestration.settings import load_parameters

    registry = load_parameters().registry
    version = re.fullmatch(rf"{re.escape(registry.model_name)} v(\d+)", uis.report["champion"])
    assert version, uis.report["champion"]
    page.goto(f"{uis.mlflow}/#/models/{registry.model_name}")
    row = page.get_by_role("row").filter(
        has=page.get_by_role("link", name=f"Version {version[1]}", exact=True)
    )
    expect(row).to_contain_text(f"@ {registry.champion_alias}")
    # No other version holds the alias.
    expect(page.get_by_text(f"@ {registry.champion_alias}", exact=True)).to_have_count(1)
    uis.shot(page, "mlflow_model")


def test_mlflow_runs_show_the_candidate_and_its_metrics(page: Page, uis: Uis) -> None:
    from orchestration.settings import load_parameters

    experiment = load_parameters().registry.experiment
    page.goto(f"{uis.mlflow}/#/experiments")
    # MLflow 3 starts in its GenAI mode, where an experiment opens on a traces overview.
    page.get_by_text("Model training", exact=True).click()
    page.get_by_role("link", name=experiment, exact=True).click()
    candidate = page.get_by_role("link", name=re.compile(r"^(catboost|logistic)-"))
    expect(candidate).to_be_visible()
    # A rule's run is logged only when no model has passed the gate (this shop's candidate
    # may or may not beat the rules: the report says which).
    baselines = page.get_by_role("link", name=re.compile(r"^baseline-"))
    if uis.report["champion_kind"] == "baseline":
        expect(baselines.first).to_be_visible()
    else:
        expect(baselines).to_have_count(0)
    uis.shot(page, "mlflow_runs")
    # The runs table shows no metric columns by default: the run's page lists them.
    candidate.click()
    metrics = page.get_by_role("table").filter(has_text="roc_auc")
    row = metrics.get_by_role("row").filter(
        has=page.get_by_role("cell", name="roc_auc", exact=True)
    )
    expect(row).to_be_visible()
    shown = float(re.findall(r"\d\.\d+", row.inner_text())[-1])
    assert round(shown, 4) == uis.report["auc"]
    uis.shot(page, "mlflow_run")


# --- dbt docs --------------------------------------------------------------------------


def test_dbt_docs_overview_is_the_projects(page: Page, uis: Uis) -> None:
    page.goto(f"{uis.docs}/#!/overview")
    overview = page.locator(".app-details .panel-body")  # the rendered __overview__ block
    # The project's own {% docs __overview__ %}, not dbt's default welcome page: it walks
    # the flow from raw to the audience, naming the marts.
    expect(overview).to_contain_text("customer_features")
    expect(overview).to_contain_text("campaign_audience")
    expect(overview).not_to_contain_text("auto-generated documentation for your dbt project")
    uis.shot(page, "dbt_overview")


def test_dbt_docs_source_page_describes_its_columns(page: Page, uis: Uis) -> None:
    manifest = json.loads((uis.home / "dbt" / "target" / "manifest.json").read_text("utf-8"))
    (unique_id,) = [
        k
        for k, v in manifest["sources"].items()
        if v["source_name"] == "thelook" and v["name"] == "order_items"
    ]
    described = manifest["sources"][unique_id]["columns"]["created_at"]["description"]
    assert described, "raw order_items.created_at has no description in its sources yml"
    page.goto(f"{uis.docs}/#!/source/{unique_id}")
    expect(page.get_by_text("thelook.order_items", exact=False).first).to_be_visible()
    row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name="created_at", exact=True)
    )
    expect(row).to_contain_text("TIMESTAMP")  # from the catalog: the warehouse's own type
    expect(row).to_contain_text(described)
    uis.shot(page, "dbt_source")

"""`nextbuy ui`: the Dagster UI, the dbt docs site and the MLflow UI as child processes on
loopback, until Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from orchestration.environment import PROJECT_ROOT, Environment


class UiPorts(NamedTuple):
    dagster: int = 3000
    docs: int = 8580
    mlflow: int = 5000


def ui_commands(env: Environment, ports: UiPorts) -> dict[str, list[str]]:
    """The command of each UI process (name -> argv)."""
    from orchestration.dbt import dbt_target_path
    from orchestration.mlflow_store import tracking_uri

    bin_dir = Path(sys.executable).parent
    return {
        "Dagster UI": [
            str(bin_dir / "dagster"),
            "dev",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(ports.dagster),
        ],
        "dbt docs": [
            sys.executable,
            "-m",
            "http.server",
            str(ports.docs),
            "-b",
            "127.0.0.1",
            "-d",
            str(dbt_target_path(env)),
        ],
        "MLflow": [
            str(bin_dir / "mlflow"),
            "ui",
            "--backend-store-uri",
            tracking_uri(env),
            "--host",
            "127.0.0.1",
            "--port",
            str(ports.mlflow),
            # One person's UI: one worker starts in seconds where the default four (and
            # MLflow's job runner, off in serve_uis) took a minute on two cores.
            "--workers",
            "1",
        ],
    }


def serve_uis(env: Environment, ports: UiPorts, echo: Callable[[str], None] = print) -> None:
    """Generate the dbt docs, start every UI, say when each answers, and wait; on Ctrl-C (or
    when one exits) stop the others with SIGINT, as a terminal would."""
    from orchestration.dbt import run_dbt
    from orchestration.instance import dagster_home

    commands = ui_commands(env, ports)
    process_env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home(env)),
        # Links in Dagster's metadata point at this MLflow UI.
        "NEXTBUY_MLFLOW_UI_URL": f"http://127.0.0.1:{ports.mlflow}",
        # MLflow's background job runner (GenAI jobs) is not used here.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    # MLflow needs nothing of dbt's, so it starts while the docs are generated; Dagster
    # reads the manifest that generation writes, so it starts after.
    processes = {"MLflow": subprocess.Popen(commands["MLflow"], env=process_env)}
    port_of = dict(zip(commands, ports, strict=True))
    try:
        echo("generating the dbt docs ...")
        run_dbt(["docs", "generate", "--quiet"], warehouse=env.warehouse_path)
        for name, command in commands.items():
            if name not in processes:
                processes[name] = subprocess.Popen(command, env=process_env)
        echo(
            "starting " + ", ".join(commands) + " (Dagster loads the code location first: "
            "up to a minute or two) ..."
        )
        for name, process in processes.items():
            threading.Thread(
                target=_announce,
                args=(name, port_of[name], process, echo),
                name=f"ready-{name}",
                daemon=True,
            ).start()
        for process in processes.values():
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            process.wait()


def _announce(
    name: str, port: int, process: subprocess.Popen[bytes], echo: Callable[[str], None]
) -> None:
    url = f"http://127.0.0.1:{port}"
    took = wait_until_answers(url, process, timeout=READY_TIMEOUT_SECONDS)
    if took is None:
        if process.poll() is None:
            echo(f"{name}: not answering at {url} after {READY_TIMEOUT_SECONDS:.0f} s")
        else:
            echo(f"{name}: exited with code {process.returncode} before answering at {url}")
    else:
        echo(f"{name}: ready at {url} ({took:.0f} s)")


READY_TIMEOUT_SECONDS = 300.0


def wait_until_answers(
    url: str, process: subprocess.Popen[bytes] | None = None, *, timeout: float
) -> float | None:
    """Seconds until ``url`` answered an HTTP GET (any status), or None when ``timeout``
    passed or ``process`` exited first."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=5):
                return time.monotonic() - start
        except urllib.error.HTTPError:
            return time.monotonic() - start  # it answered, with an error page
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return None

"""`nextbuy ui`: the Dagster UI, the dbt docs site and the MLflow UI as child processes on
loopback, until Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
        ],
    }


def serve_uis(env: Environment, ports: UiPorts, echo: Callable[[str], None] = print) -> None:
    """Generate the dbt docs, start every UI and wait; on Ctrl-C (or when one exits) stop
    the others with SIGINT, as a terminal would."""
    from orchestration.dbt import run_dbt
    from orchestration.pipeline import dagster_home

    run_dbt(["docs", "generate", "--quiet"], warehouse=env.warehouse_path)
    commands = ui_commands(env, ports)
    process_env = {**os.environ, "DAGSTER_HOME": str(dagster_home(env))}
    processes = [subprocess.Popen(c, env=process_env) for c in commands.values()]
    for name, port in zip(commands, ports, strict=True):
        echo(f"{name}: http://127.0.0.1:{port}")
    try:
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait()

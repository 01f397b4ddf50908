"""A local BigQuery emulator (the PyPI package bqemulator) for the tests of tests/bigquery.

It serves BigQuery's REST API on a loopback port, backed by DuckDB, and google-cloud-bigquery
and dbt-bigquery talk to it as they would to BigQuery when the environment says where it
is (``Emulator.env``). Nothing here reaches Google: the clients are pointed at loopback and
hold a token that never needs refreshing.

bqemulator runs in an environment of its own, ``.venv-bqemulator/`` in the checkout
(git-ignored), installed with uv from ``requirements-emulator.lock`` (inputs and why:
``requirements-emulator.in``) and reused while the lock is unchanged: it needs an older
DuckDB than the project's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestration.environment import PROJECT_ROOT

LOCK = Path(__file__).with_name("requirements-emulator.lock")
# Runs bqemulator's CLI after mending a defect of it (the file says which).
LAUNCHER = Path(__file__).with_name("emulator_launcher.py")
VENV = PROJECT_ROOT / ".venv-bqemulator"
DEFAULT_PROJECT = "nextbuy-emulator"


class EmulatorSetupError(RuntimeError):
    """The emulator's environment could not be installed (no uv, no package index)."""


class EmulatorError(RuntimeError):
    """The emulator was installed but did not start or stopped answering."""


def _uv() -> str:
    """uv from PATH, else the copy beside this interpreter (the project's venv)."""
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).is_file():
        raise EmulatorSetupError("uv is neither on PATH nor beside " + sys.executable)
    return found


def _run_setup_step(args: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EmulatorSetupError(f"{what}: {e}") from e
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise EmulatorSetupError(f"{what} failed ({' '.join(args)}):\n{tail}")


def emulator_home(venv: Path = VENV) -> Path:
    """HOME of the emulator's process: DuckDB looks for installed extensions under it."""
    return venv / "home"


def ensure_venv(venv: Path = VENV, lock: Path = LOCK) -> Path:
    """The emulator's environment, installed from ``lock`` unless it already is; returns
    its interpreter."""
    stamp = venv / ".installed"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    uv = _uv()
    # This interpreter is a 3.11 already on the machine; uv would otherwise fetch one.
    _run_setup_step(
        [uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv)],
        "creating the emulator's venv",
    )
    _run_setup_step(
        [uv, "pip", "sync", "--quiet", "--python", str(python), str(lock)],
        f"installing {lock.name} into {venv}",
    )
    # Workaround: bqemulator runs `INSTALL spatial` and `INSTALL avro` when it starts,
    # which download the extensions from DuckDB's servers (spatial failing offline stops
    # it). The duckdb-extension-* wheels of the lock ship the same files; installing them
    # from there into the extension folder of the emulator's own HOME makes those
    # INSTALLs no-ops.
    home = emulator_home(venv)
    home.mkdir(parents=True, exist_ok=True)
    install_extensions = (
        "import duckdb, importlib, pathlib\n"
        "con = duckdb.connect()\n"
        "for name in ('spatial', 'avro'):\n"
        "    package = pathlib.Path(importlib.import_module(f'duckdb_extension_{name}').__file__)\n"
        "    path = next(package.parent.glob(f'extensions/*/{name}.duckdb_extension'))\n"
        "    con.execute(f\"INSTALL '{path}'\")\n"
    )
    _run_setup_step(
        [str(python), "-c", install_extensions],
        "installing DuckDB's spatial and avro extensions from their wheels",
        env={**os.environ, "HOME": str(home)},
    )
    stamp.write_text(wanted)
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_credentials(path: Path) -> Path:
    """An authorized_user credentials file whose access token expires in 2099: the
    clients use it as it is and never ask Google's token endpoint for a new one (fake
    credentials sent there are retried for minutes)."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "emulator.apps.googleusercontent.com",
                "client_secret": "emulator",
                "refresh_token": "emulator",
                "token": "emulator",
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    return path


@dataclass(frozen=True)
class Emulator:
    url: str
    project: str
    log: Path
    credentials: Path

    @property
    def env(self) -> dict[str, str]:
        """What a BigQuery client needs in its environment to use this emulator."""
        return {
            "BIGQUERY_EMULATOR_HOST": self.url,
            # google-auth would otherwise probe the GCE metadata server.
            "NO_GCE_CHECK": "true",
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.credentials),
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the emulator and whatever it started (it runs in a process group of its own)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def running_emulator(
    workdir: Path, project: str = DEFAULT_PROJECT, start_timeout: float = 90.0
) -> Iterator[Emulator]:
    """Start an empty, in-memory emulator for ``project`` on a free loopback port, wait
    until it answers, and stop it on leaving. ``workdir`` receives its log and the
    credentials file."""
    python = ensure_venv()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    emulator = Emulator(
        url=f"http://127.0.0.1:{port}",
        project=project,
        log=workdir / "bqemulator.log",
        credentials=write_credentials(workdir / "credentials.json"),
    )
    args = [
        str(python),
        str(LAUNCHER),
        "start",
        "--ephemeral",
        "--project",
        project,
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(_free_port()),
        "--log-level",
        "warning",
        "--log-format",
        "console",
        "--no-admin",
    ]
    env = {**os.environ, "HOME": str(emulator_home())}
    with emulator.log.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not _ready(emulator.url):
            if process.poll() is not None:
                raise EmulatorError(
                    f"bqemulator exited with {process.returncode} before answering on "
                    f"{emulator.url}; the end of its log ({emulator.log}):\n{emulator.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise EmulatorError(
                    f"bqemulator did not answer on {emulator.url}/readyz within "
                    f"{start_timeout:.0f} s; the end of its log ({emulator.log}):\n"
                    f"{emulator.log_tail()}"
                )
            time.sleep(0.25)
        yield emulator
    finally:
        _stop(process)

"""The server and the batch share the warehouse file without blocking each other: the
server holds no lock between copies, keeps answering from its copy while a batch run
holds the file, and takes a new copy once the run has let go of it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.serving.conftest import Shop, serving

# A batch run's write: hold the warehouse open for writing until told to finish.
BATCH_RUN = """
import sys
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("delete from marts.customer_features where customer_id = ?", [int(sys.argv[2])])
print("written", flush=True)
sys.stdin.readline()
con.close()
"""


def _wait(condition: Any, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_batch_run_writes_while_the_server_serves_and_its_result_is_copied_in(
    shop: Shop, compiled: Any, tmp_path: Path
) -> None:
    # A home of its own (the warehouse changes here), with the shop's registry.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(shop.home / "warehouse.duckdb", home / "warehouse.duckdb")
    shutil.copytree(shop.home / "mlflow", home / "mlflow")
    copy = dataclasses.replace(shop, home=home)
    gone, kept = (int(i) for i in shop.features["customer_id"].iloc[:2])

    with serving(
        copy, compiled, tmp_path, warehouse_poll_seconds=0.1, warehouse_quiet_seconds=0.3
    ) as client:

        def status(customer_id: int) -> int:
            return int(client.post("/score", json={"customer_id": customer_id}).status_code)

        def health() -> dict[str, Any]:
            return dict(client.get("/health").json())

        assert status(gone) == 200
        # A batch run (another process) opens the warehouse for writing while the server
        # runs: the server holds no lock on it.
        batch = subprocess.Popen(
            [sys.executable, "-c", BATCH_RUN, str(home / "warehouse.duckdb"), str(gone)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert batch.stdout is not None and batch.stdin is not None
            assert batch.stdout.readline().strip() == "written"
            # The server tries to copy the changed file, finds it locked, keeps serving.
            assert _wait(lambda: "locked" in health()["errors"].get("warehouse", ""))
            assert status(gone) == 200
            batch.stdin.write("done\n")
            batch.stdin.flush()
            assert batch.wait(timeout=60) == 0
        finally:
            if batch.poll() is None:
                batch.kill()
        assert _wait(lambda: health()["reloads"]["warehouse"] == 1)
        assert "warehouse" not in health()["errors"]
        response = client.post("/score", json={"customer_id": gone})
        assert response.status_code == 404 and "no purchase" in response.json()["detail"]
        assert status(kept) == 200
        assert health()["features"]["customers"] == len(shop.features) - 1

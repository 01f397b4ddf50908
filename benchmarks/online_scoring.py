"""Online scoring: latency and throughput of both /score paths at fixed request rates,
and how often an online score matches the batch's.

    .venv/bin/python benchmarks/online_scoring.py                    # 2,000-customer shop, 100 and 500 rps
    .venv/bin/python benchmarks/online_scoring.py --home DIR         # an existing NEXTBUY_HOME instead
    .venv/bin/python benchmarks/online_scoring.py --rates 50,100,200 --duration 20 --parity 500

Without --home the script builds a shop under benchmarks/.work/serving/ as the serving
tests do (`nextbuy simulate --users N`, `nextbuy pipeline` with a quicker model, then the
CatBoost candidate promoted and the batch's scoring asset run again, so that a model, not
a rule, is measured and compared). The server is `python -m serving.cli` (uvicorn, one
process) on loopback, started as a subprocess; the client is an open-loop asyncio load
generator in this process (keep-alive HTTP/1.1 connections on asyncio streams): requests are sent on a fixed schedule whatever the
answers, and a request's latency runs from its scheduled send time to its answer, so a
server that falls behind is charged for the queue it builds (no coordinated omission).
The client shares the machine with the server; its own CPU is part of what is measured.

Paths: `features` sends {"customer_id": id} (the row of marts.customer_features, read
from the server's warehouse copy, scored); `history` sends the customer's raw users,
orders and order_items rows, whose features the server computes with the compiled dbt
SQL before scoring. Parity: for --parity customers, the features the history path
returns equal marts.customer_features column by column, and both paths' scores equal
ml.customer_scores of the same date.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _measure import NEXTBUY, machine  # noqa: E402

WORK = HERE / ".work" / "serving"


def build_shop(root: Path, users: int) -> tuple[Path, Path]:
    """A simulated shop with a CatBoost champion whose scores are in ml.customer_scores."""
    import yaml

    from orchestration.settings import load_parameters

    home, parameters = root / "home", root / "parameters.yaml"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    params = load_parameters().model_dump(mode="json")
    params["model"]["catboost"].update({"iterations": 200})
    params["evaluation"]["bootstrap_samples"] = 200
    # CatBoost the only candidate: the benchmark measures serving a text-feature model.
    params["split"].update({"test_days": 60, "validation_days": 30, "folds": 2})
    params["challenger"]["enabled"] = False
    params["online"]["enabled"] = False
    params["tuning"]["trials"] = 1
    parameters.write_text(yaml.safe_dump(params))
    env = {**os.environ, "NEXTBUY_HOME": str(home), "NEXTBUY_PARAMETERS": str(parameters)}
    for args in (["simulate", "--users", str(users)], ["pipeline"]):
        print(f"$ nextbuy {' '.join(args)}", flush=True)
        done = subprocess.run([str(NEXTBUY), *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"nextbuy {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    os.environ.update({"NEXTBUY_HOME": str(home), "NEXTBUY_PARAMETERS": str(parameters)})
    promote_candidate_and_rescore()
    return home, parameters


def promote_candidate_and_rescore() -> None:
    import dagster as dg

    from orchestration.defs.scoring.assets import customer_scores
    from orchestration.environment import current_environment
    from orchestration.instance import instance
    from orchestration.mlflow_store import configure_mlflow, tracking_uri
    from orchestration.registry import Registry
    from orchestration.resources import build_resources
    from orchestration.settings import load_parameters

    env = current_environment()
    settings = load_parameters().registry
    configure_mlflow(tracking_uri(env))
    registry = Registry(
        tracking_uri(env), model_name=settings.model_name, alias=settings.champion_alias
    )
    champion = registry.champion()
    if champion is not None and champion.scorer_name == "catboost":
        return
    candidate = max(
        (v for v in registry.versions() if v.scorer_name == "catboost"),
        key=lambda v: int(v.version),
    )
    registry.promote(candidate, "benchmarks/online_scoring.py: measure a CatBoost champion")
    as_of = _features_as_of(env.warehouse_path)
    with instance(env) as inst:
        result = dg.materialize(
            [customer_scores],
            resources=build_resources(env),
            instance=inst,
            partition_key=as_of.isoformat(),
            raise_on_error=False,
        )
    if not result.success:
        raise SystemExit("re-scoring with the promoted candidate failed")


def _features_as_of(warehouse: Path) -> dt.date:
    from thelook.warehouse import connect

    con = connect(warehouse, read_only=True)
    try:
        row = con.execute("select max(as_of) from marts.customer_features").fetchone()
    finally:
        con.close()
    assert row is not None and row[0] is not None
    value: dt.date = row[0].date()
    return value


def warehouse_data(home: Path, customers: int) -> dict[str, Any]:
    """Customers to ask for, their history requests, and the batch's rows to compare."""
    from thelook.warehouse import connect

    con = connect(home / "warehouse.duckdb", read_only=True)
    try:
        features = _records(con, "select * from marts.customer_features order by customer_id")
        scores = dict(
            con.execute(
                "select customer_id, score from ml.customer_scores "
                "where as_of = (select max(as_of) from marts.customer_features)"
            ).fetchall()
        )
        step = max(1, len(features) // customers)
        sample = [row["customer_id"] for row in features[::step]][:customers]
        histories = {}
        for customer_id in sample:
            customer = _records(con, "select * from raw.users where id = ?", customer_id)[0]
            orders = _records(
                con, "select * exclude (user_id) from raw.orders where user_id = ?", customer_id
            )
            items = _records(
                con,
                "select * exclude (user_id) from raw.order_items where user_id = ?",
                customer_id,
            )
            histories[customer_id] = {"customer": customer, "orders": orders, "items": items}
    finally:
        con.close()
    return {
        "features": {row["customer_id"]: row for row in features},
        "scores": scores,
        "sample": sample,
        "histories": histories,
        "as_of": features[0]["as_of"].date().isoformat(),
    }


def _records(con: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    result = con.execute(sql, list(params))
    names = [column[0] for column in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    home: Path, parameters: Path | None, port: int, log: Path
) -> subprocess.Popen[Any]:
    env = {**os.environ, "NEXTBUY_HOME": str(home)}
    if parameters is not None:
        env["NEXTBUY_PARAMETERS"] = str(parameters)
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "serving.cli", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return server


def wait_ready(url: str, server: subprocess.Popen[Any], timeout: float) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}) before it was ready")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready within {timeout:.0f} s")


class Connection:
    """One keep-alive HTTP/1.1 connection that posts JSON and reads the status (asyncio
    streams: httpx's async pool, at 64 connections, spent more CPU per request than the
    server and capped the load near 80 requests a second on this machine)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        """POST and read the answer; a kept-alive connection the server has closed
        meanwhile (uvicorn closes idle ones after 5 s) is reopened and the request sent
        again, as HTTP clients do."""
        reused = self.writer is not None
        try:
            return await self._post(path, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            if not reused:
                raise
        return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def open_loop(
    url: str, bodies: list[bytes], rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    """Send ``rate`` requests a second for ``seconds``, cycling through ``bodies``.

    A scheduler releases each request at its time into a queue that ``connections``
    senders (one keep-alive connection each) drain; a request waiting for a free sender
    is charged that wait."""
    host, port = url.removeprefix("http://").split(":")
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    finished: list[float] = []
    ready: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def schedule() -> None:
        for n in range(total):
            scheduled = start + n / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            ready.put_nowait((n, scheduled))
        for _ in range(connections):
            ready.put_nowait(None)

    async def send() -> None:
        connection = Connection(host, int(port))
        while (item := await ready.get()) is not None:
            n, scheduled = item
            try:
                status = await connection.post("/score", bodies[n % len(bodies)])
                key = "" if status == 200 else str(status)
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                key = type(e).__name__
                connection.close()
            done = loop.time()
            if key:
                errors[key] = errors.get(key, 0) + 1
            else:
                latencies.append(done - scheduled)
                finished.append(done)
        connection.close()

    await asyncio.gather(schedule(), *(send() for _ in range(connections)))
    span = (max(finished) - start) if finished else math.nan
    latencies.sort()
    return {
        "rate": rate,
        "sent": total,
        "ok": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / span if span and span > 0 else math.nan,
        "p50_ms": 1000 * _quantile(latencies, 0.50),
        "p99_ms": 1000 * _quantile(latencies, 0.99),
        "max_ms": 1000 * latencies[-1] if latencies else math.nan,
    }


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(q * len(values)))]


def parity(url: str, data: dict[str, Any], customers: int) -> dict[str, Any]:
    import httpx

    sample = data["sample"][:customers]
    features_match = scores_match = stored_match = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for customer_id in sample:
            body = {**_jsonable(data["histories"][customer_id]), "as_of": data["as_of"]}
            got = client.post("/score", params={"include_features": "true"}, json=body).json()
            stored = client.post("/score", json={"customer_id": customer_id}).json()
            expected = _jsonable(data["features"][customer_id])
            if got.get("features") == expected:
                features_match += 1
            batch_score = data["scores"].get(customer_id)
            if got.get("score") == batch_score:
                scores_match += 1
            if stored.get("score") == batch_score:
                stored_match += 1
    n = len(sample)
    return {
        "customers": n,
        "features_exact": features_match / n,
        "history_scores_exact": scores_match / n,
        "features_path_scores_exact": stored_match / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="An existing NEXTBUY_HOME.")
    parser.add_argument("--parameters", type=Path, default=None, help="Its parameters file.")
    parser.add_argument("--users", type=int, default=2000, help="Shop size when building one.")
    parser.add_argument("--rates", default="100,500", help="Requests per second, comma separated.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement.")
    parser.add_argument("--customers", type=int, default=500, help="Distinct customers asked.")
    parser.add_argument("--parity", type=int, default=200, help="Customers checked for parity.")
    parser.add_argument(
        "--connections", type=int, default=64, help="Client connections (requests in flight)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the built shop.")
    args = parser.parse_args()

    built = args.home is None
    if built:
        home, parameters = build_shop(WORK, args.users)
    else:
        home, parameters = args.home.resolve(), args.parameters
    data = warehouse_data(home, args.customers)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (WORK if built else home / "serving") / "server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(home, parameters, port, log)
    try:
        ready = wait_ready(url, server, timeout=600)
        import httpx

        health = httpx.get(f"{url}/health").json()
        workloads = {
            "features": [json.dumps({"customer_id": c}).encode() for c in data["sample"]],
            "history": [
                json.dumps({**_jsonable(data["histories"][c]), "as_of": data["as_of"]}).encode()
                for c in data["sample"]
            ],
        }
        items = [len(h["items"]) for h in data["histories"].values()]
        results = []
        for path, bodies in workloads.items():
            asyncio.run(open_loop(url, bodies, 20, 2.0, 8))  # warm-up
            for rate in (float(r) for r in args.rates.split(",")):
                load_before = os.getloadavg()[0]
                result = asyncio.run(open_loop(url, bodies, rate, args.duration, args.connections))
                results.append({"path": path, "load_before": load_before, **result})
        checked = parity(url, data, args.parity)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print()
    print(f"machine: {machine()}")
    print(
        f"shop: {health['features']['customers']:,} customers in customer_features as of "
        f"{health['features']['as_of']}; champion {health['champion']['name']} "
        f"v{health['champion']['version']} ({health['champion']['scorer']}); history "
        f"requests of {statistics.mean(items):.1f} items on average (max {max(items)})"
    )
    print(f"server ready {ready:.1f} s after start (dbt compile included unless cached)")
    print()
    print(
        "| path | rate (req/s) | sent | ok | errors | throughput (req/s) | p50 (ms) | p99 (ms) | max (ms) | load avg before |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        print(
            f"| {r['path']} | {r['rate']:.0f} | {r['sent']} | {r['ok']} | {errors} | "
            f"{r['throughput']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{r['load_before']:.2f} |"
        )
    print()
    print(
        f"parity over {checked['customers']} customers: features exact "
        f"{checked['features_exact']:.1%}, history-path scores exact "
        f"{checked['history_scores_exact']:.1%}, features-path scores exact "
        f"{checked['features_path_scores_exact']:.1%} (against ml.customer_scores)"
    )
    print(json.dumps({"results": results, "parity": checked}, default=str))
    if built and not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A moved champion alias reaches online scores without a restart, and no request fails
or sees a half-loaded model while it does."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.serving.conftest import Shop, serving

CLIENTS = 3


def test_promoting_another_version_while_requests_run(
    shop: Shop, compiled: Any, tmp_path: Path
) -> None:
    registry = shop.registry()
    customers = [int(i) for i in shop.features["customer_id"].iloc[::50]]
    # (customer, sent, received, status, body), times from time.monotonic().
    answers: list[tuple[int, float, float, int, dict[str, Any]]] = []
    stop = threading.Event()

    def ask(client: Any, offset: int) -> None:
        n = offset
        while not stop.is_set():
            customer_id = customers[n % len(customers)]
            sent = time.monotonic()
            response = client.post("/score", json={"customer_id": customer_id})
            answers.append(
                (customer_id, sent, time.monotonic(), response.status_code, response.json())
            )
            n += 1

    def answered_by(version: str) -> list[tuple[int, float, float, int, dict[str, Any]]]:
        return [a for a in list(answers) if a[4].get("model", {}).get("version") == version]

    try:
        with serving(shop, compiled, tmp_path, alias_poll_seconds=0.2) as client:
            threads = [threading.Thread(target=ask, args=(client, k)) for k in range(CLIENTS)]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1.0)
                registry.promote(registry.version(shop.rule_version), "tests/serving: reload")
                deadline = time.monotonic() + 60
                while not answered_by(shop.rule_version) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1.0)
            finally:
                stop.set()
                for thread in threads:
                    thread.join()
            health = client.get("/health").json()
    finally:
        # The other tests start with the CatBoost champion.
        registry.promote(registry.version(shop.model_version), "tests/serving: restore")

    failed = [(status, body) for *_, status, body in answers if status != 200]
    assert not failed, failed[:3]
    old, new = answered_by(shop.model_version), answered_by(shop.rule_version)
    assert len(old) + len(new) == len(answers)
    assert old and new, "the alias did not reach the server within a minute"
    # One swap: once the new champion has answered, every request sent after gets it.
    first_new = min(received for _, _, received, _, _ in new)
    assert all(sent < first_new for _, sent, _, _, _ in old)
    # Each answer is its model's batch score: never one model's name on another's score.
    expected = {shop.model_version: shop.model_scores, shop.rule_version: shop.rule_scores}
    for customer_id, _, _, _, body in answers:
        assert body["score"] == expected[body["model"]["version"]][customer_id]
    assert health["reloads"]["champion"] == 1
    assert health["champion"]["version"] == shop.rule_version

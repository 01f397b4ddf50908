"""A real google-cloud-bigquery Client that talks to recorded REST answers, offline.

`RecordedBigQuery` is a requests.Session for ``bigquery.Client(_http=...)``: it answers the
requests a test expects, in order, with JSON bodies from a fixtures folder, records what
the client sent, and fails on anything else. `no_network` refuses sockets; `within` puts a
deadline on a call. Used by tests/orchestration/test_bigquery_partitions.py and
tests/orchestration/test_bigquery_warehouse.py.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

API = "https://bigquery.googleapis.com/bigquery/v2"

R = TypeVar("R")


@dataclass(frozen=True)
class Call:
    """One HTTP request the client made."""

    method: str
    path: str
    params: dict[str, str]
    body: dict[str, Any] | None
    timeout: object


@dataclass(frozen=True)
class Answer:
    """The recorded answer to one expected request."""

    method: str
    path: str
    # A file of the session's folder; empty: an empty body (a DELETE's 204).
    fixture: str
    status: int = 200


class RecordedBigQuery(requests.Session):
    """A requests.Session for bigquery.Client(_http=...) that answers the expected
    requests, in order, with recorded bodies, and fails on any other request."""

    is_mtls = False  # read by google.cloud._http when it builds the API URL

    def __init__(self, *answers: Answer, folder: Path, polled: tuple[Answer, ...] = ()) -> None:
        """``answers`` in the order they must be asked for, from files of ``folder``;
        ``polled`` whenever asked (the state of a job the client polls)."""
        super().__init__()
        self.folder = folder
        self.answers = list(answers)
        self.polled = {(a.method, a.path): a for a in polled}
        self.calls: list[Call] = []

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: object = None,
        **kwargs: Any,
    ) -> requests.Response:
        parts = urlsplit(url)
        assert url.startswith(API), url
        call = Call(
            method=method,
            path=parts.path.removeprefix(urlsplit(API).path),
            params={k: v[-1] for k, v in parse_qs(parts.query).items()},
            body=json.loads(data) if data else None,
            timeout=timeout,
        )
        self.calls.append(call)
        answer = self.polled.get((call.method, call.path))
        if answer is None:
            assert self.answers, f"unexpected request {method} {url}"
            answer = self.answers.pop(0)
        assert (call.method, call.path) == (answer.method, answer.path), call
        response = requests.Response()
        response.status_code = answer.status
        response._content = _recorded(self.folder / answer.fixture) if answer.fixture else b""
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        response.url = url
        response.request = requests.Request(method, url, headers=headers).prepare()
        return response

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise AssertionError(f"a request went past the recorded answers: {request.url}")


@functools.cache
def _recorded(path: Path) -> bytes:
    return path.read_bytes()


def within(seconds: float, fn: Callable[[], R]) -> R:
    """``fn()``, or a failure if it has not returned after ``seconds``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"no answer within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every socket connection fail (call from an autouse fixture)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access in an offline test: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def warehouse_talks_to(
    monkeypatch: pytest.MonkeyPatch, session: Callable[[], requests.Session]
) -> None:
    """Make every client of the BigQuery warehouse resource talk to ``session()`` (called
    once per client the resource opens) instead of Google."""
    from contextlib import contextmanager

    from orchestration.bigquery_warehouse import BigQueryWarehouseResource

    @contextmanager
    def client(self: BigQueryWarehouseResource) -> Any:
        yield bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            _http=session(),
            location=self.location,
        )

    monkeypatch.setattr(BigQueryWarehouseResource, "client", client)

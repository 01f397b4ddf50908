"""The online scoring API: `POST /score`, `POST /learn`, `GET /model`, `GET /health` (and
FastAPI's /docs and /openapi.json). /learn feeds an online champion (serving/online.py).

``create_app`` builds the application; its lifespan starts the scoring service (compile
the dbt chain, copy the warehouse, load the champion, start the workers and the poller)
and stops it (queued requests finish, the predictions log is written). Run it with
uvicorn (`nextbuy serve`, serving/cli.py) in one process: the process holds the compiled
SQL, the warehouse copy and the model, and its workers batch requests across clients.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestration.environment import Environment, disable_telemetry
from serving.compiled import CompiledFeatures
from serving.features import History
from serving.schemas import LearnRequest, LearnResponse, ScoreRequest, ScoreResponse
from serving.service import Job, ScoreError, ScoringService, ServingConfig

# A history item takes well under this many bytes of JSON; a body beyond
# max_items * this is refused before it is parsed.
BYTES_PER_ITEM = 2048
_BODY_SLACK = 64 * 1024
# What /score answers besides 200 (/learn: the same but 413, and 409).
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown customer, or no purchase before as_of."},
    413: {"description": "A history of more than max_items items."},
    422: {"description": "A malformed body (the field is named)."},
    503: {"description": "Not ready (no champion or warehouse copy yet) or overloaded."},
}


def create_app(
    env: Environment | None = None,
    config: ServingConfig | None = None,
    *,
    compiled: CompiledFeatures | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The API for ``env`` (default: the current environment). ``compiled`` skips the dbt
    compile at start-up (tests share one). ``freeze_heap``: once started, exempt every
    object then alive from the garbage collector (`nextbuy serve`, whose process is the
    server's alone: see ``_freeze_heap``)."""
    disable_telemetry()
    config = config or ServingConfig()
    service = ScoringService(env, config, compiled=compiled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.start)
        if freeze_heap:
            _freeze_heap()
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="nextbuy online scoring",
        summary="A customer's next-order brand propensity, computed as the batch computes it.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(RefuseOversizedBodies, max_items=config.max_items)

    @app.post(
        "/score",
        response_model=ScoreResponse,
        response_model_exclude_none=True,
        responses=_ERRORS,
    )
    async def score(body: ScoreRequest, include_features: bool = False) -> dict[str, Any]:
        """Score one customer: from the warehouse (``customer_id``) or from a purchase
        history in the request (``customer`` and ``items``)."""
        customer_id = body.customer.id if body.customer is not None else body.customer_id
        assert customer_id is not None  # ScoreRequest requires one of the two
        job = Job(
            customer_id=customer_id,
            as_of=body.as_of,
            history=_history(body),
            requested_at=dt.datetime.now(dt.UTC),
        )
        scored = await _answer(lambda: service.submit(job))
        return {
            "customer_id": scored.customer_id,
            "as_of": scored.as_of,
            "score": scored.score,
            "model": scored.model,
            "features_hash": scored.features_hash,
            "path": scored.path,
            "features": dict(scored.features) if include_features else None,
        }

    @app.post(
        "/learn",
        response_model=LearnResponse,
        responses={
            **{code: _ERRORS[code] for code in (404, 422, 503)},
            409: {"description": "The champion is not an online model: nothing learns."},
        },
    )
    async def learn(body: LearnRequest) -> dict[str, Any]:
        """Feed a realised outcome to the online champion: the customer's features as of
        ``as_of``, computed from the warehouse as /score computes them, learnt once by
        the server's one learner."""
        await _answer(service.learner)  # 409 before computing anything
        job = Job(
            customer_id=body.customer_id,
            as_of=body.as_of,
            history=None,
            requested_at=dt.datetime.now(dt.UTC),
            logged=False,
        )
        example = await _answer(lambda: service.submit(job))
        learnt = await _answer(lambda: service.learn(example.features, body.label))
        return {
            "customer_id": body.customer_id,
            "as_of": example.as_of,
            "label": body.label,
            "score_before": learnt.score_before,
            "learned": learnt.learned,
            "model": example.model,
        }

    @app.get("/model")
    async def model() -> dict[str, Any]:
        """The champion scoring now: name, version, scorer, training window, the gate's
        decision and why it is champion; an online champion's running metrics since it
        was loaded (``online``)."""
        champion = service.champion
        if champion is None:
            raise HTTPException(
                status_code=503, detail=service.errors.get("champion", "no champion loaded yet")
            )
        online = champion.learner.status() if champion.learner is not None else None
        return {**champion.info, "loaded_at": champion.loaded_at.isoformat(), "online": online}

    @app.get("/health")
    async def health(response: Response) -> dict[str, Any]:
        """Ready when a champion and the warehouse copy are loaded (else 503)."""
        state = service.health()
        if state["status"] != "ok":
            response.status_code = 503
        return state

    return app


class RefuseOversizedBodies:
    """413 for a body longer than ``max_items`` history items may take, before it is read.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` runs every request
    through tasks and memory streams of its own, which in a profile of the event loop at
    500 id requests a second took more time than the /score endpoint itself."""

    def __init__(self, app: ASGIApp, *, max_items: int) -> None:
        self.app = app
        self.max_items = max_items
        self.max_body = max_items * BYTES_PER_ITEM + _BODY_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                response = JSONResponse(
                    status_code=413,
                    content={
                        "detail": f"the body of {int(length):,} bytes is more than the "
                        f"{self.max_body:,} a history of {self.max_items:,} items (max_items) "
                        "may take"
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _freeze_heap() -> None:
    """Collect, then move every object alive into the collector's permanent generation.

    The server holds some 580,000 objects after its start (dbt, MLflow, CatBoost, pandas
    and their modules), and each full collection, which the garbage of requests triggers
    every few seconds under load, walked them all: 150 to 425 ms in which no request was
    answered. On the benchmark machine the id path's p99 at 500 requests a second was 45
    to 450 ms with those pauses and 7 to 9 ms without. Frozen objects are still freed when
    their last reference goes; only cycles among them are never collected (at most the
    first state's, once the poller has replaced it)."""
    gc.collect()
    gc.freeze()


async def _answer(ask: Callable[[], Any]) -> Any:
    """The service's answer to ``ask`` (a value, or a future of one, awaited), its
    ScoreError as the HTTP error it names."""
    try:
        answer = ask()
        if isinstance(answer, Future):
            # Done already when the service answered at once (an id request it keeps the
            # answer of): no hop through the event loop's queue.
            answer = answer.result() if answer.done() else await asyncio.wrap_future(answer)
    except ScoreError as e:
        raise HTTPException(status_code=e.status_code, detail=e.detail) from None
    return answer


def _history(body: ScoreRequest) -> History | None:
    if body.customer is None:
        return None
    items = [
        {**item.raw(), "id": item.id if item.id is not None else position}
        for position, item in enumerate(body.items or [], start=1)
    ]
    return History(
        customer=body.customer.raw(),
        items=items,
        orders=[order.raw() for order in body.orders or []],
    )

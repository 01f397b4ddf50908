"""`nextbuy serve`: the online scoring API under uvicorn, until Ctrl-C.

One process, one event loop: the service's workers batch requests across clients, and
the compiled SQL, the warehouse copy and the champion are held once. (Several uvicorn
workers would each hold their own, and each compile at start-up.) uvicorn takes uvloop
and httptools when they are installed (requirements.lock has them), and writes no access
log (a line per request, on the event loop).
"""

from __future__ import annotations

from orchestration.environment import disable_telemetry


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the API of the current environment ($NEXTBUY_HOME) on ``host``:``port``."""
    disable_telemetry()
    import uvicorn

    from serving.app import create_app

    uvicorn.run(
        create_app(freeze_heap=True), host=host, port=port, log_level="info", access_log=False
    )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args()
    serve(arguments.host, arguments.port)

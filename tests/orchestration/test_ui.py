"""`nextbuy ui` says when each UI answers, not merely that it was started."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading

from orchestration.ui import wait_until_answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_waits_for_a_server_that_answers() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        took = wait_until_answers(f"http://127.0.0.1:{server.server_port}/missing", timeout=10)
    finally:
        server.shutdown()
    assert took is not None and took < 10  # a 404 is an answer


def test_gives_up_on_a_closed_port_and_on_an_exited_process() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert wait_until_answers(url, timeout=1.5) is None
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    assert wait_until_answers(url, exited, timeout=30) is None

"""Shared by the benchmark scripts: run one step as its own process tree and measure it."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

NEXTBUY = Path(sys.executable).parent / "nextbuy"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run(
    command: list[str], timeout: float | None = None, check: bool = True
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and output of a command and every process it waited for.

    Linux folds the peak RSS of waited-for descendants into a child's rusage, so a
    `nextbuy` step that runs dbt in a subprocess is measured whole. With a timeout the
    step is killed and (inf, peak so far) returned; with check=False a step killed by a
    signal returns (nan, peak, reason) instead of failing the benchmark.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = None if timeout is None else start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.perf_counter() > deadline:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            return float("inf"), usage.ru_maxrss / 1024, ""
        time.sleep(0.05)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    code = os.waitstatus_to_exitcode(status)
    if code < 0 and not check:
        # Killed by a signal: on this machine that is the kernel's OOM killer.
        return float("nan"), usage.ru_maxrss / 1024, f"killed by signal {-code}"
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out[-4000:]}")
    return wall, usage.ru_maxrss / 1024, out


def nextbuy(*args: str, timeout: float | None = None) -> tuple[float, float, str]:
    return run([str(NEXTBUY), *args], timeout=timeout)

"""Child processes (dbt) end with the `nextbuy` command that started them.

dagster-dbt runs every dbt command as a child process (``subprocess.Popen`` in
``dagster_dbt.core.dbt_cli_invocation``), without a hook to choose how. A `nextbuy`
killed while dbt works would leave dbt running alone, holding DuckDB's lock on the
warehouse and writing models nobody waits for. So:

- ``die_with_this_process`` (orchestration/dbt.py applies it to every dbt invocation) asks
  Linux to send SIGTERM to each dbt child when this process dies, however it dies
  (``prctl(PR_SET_PDEATHSIG)`` in the child before dbt starts; this survives SIGKILL);
- ``children_end_with_this_process`` (around every state-writing command) treats SIGTERM
  like Ctrl-C (SIGINT), so that Dagster fails the run, dagster-dbt forwards the interrupt
  to dbt, and every ``finally`` runs; on leaving, it terminates the children still
  running (on systems without prctl this is what remains).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Seconds a child gets to stop after SIGTERM before it is killed.
TERMINATE_SECONDS = 10

_children: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()


def _die_with(parent: int, prctl: Callable[..., int]) -> Callable[[], None]:
    """The child's first act (``preexec_fn``): die when ``parent`` does. If the parent is
    already gone (it died between fork and this call), die now."""

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class _Popen(subprocess.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` whose child dies with this process and is remembered."""

    prctl: Callable[..., int] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The death signal follows the *thread* that forked the child: only the main
        # thread lives as long as the process.
        if self.prctl is not None and threading.current_thread() is threading.main_thread():
            kwargs.setdefault("preexec_fn", _die_with(os.getpid(), self.prctl))
        super().__init__(*args, **kwargs)
        _children.add(self)


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _sigterm_as_sigint(signum: int, frame: types.FrameType | None) -> None:
    # SIGINT's handler of the moment: Python's (KeyboardInterrupt), or Dagster's while a
    # run executes (it interrupts the run at its next safe point). A process started in
    # the background by a shell ignores SIGINT, so raising SIGINT itself would do nothing.
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt


def die_with_this_process(module: types.ModuleType) -> None:
    """Make the children ``module`` starts with ``subprocess.Popen`` die with this process
    (and be remembered for terminate_children): ``module`` gets its own ``subprocess``
    whose Popen sets the death signal. dbt.dbt_invocation does this to dagster-dbt's
    dbt_cli_invocation, whose Popen takes no options from its callers."""
    if getattr(module.subprocess, "Popen", None) is _Popen:
        return
    _Popen.prctl = _libc_prctl()
    patched = types.ModuleType("subprocess")
    patched.__dict__.update(vars(subprocess))
    patched.Popen = _Popen  # type: ignore[attr-defined]
    module.subprocess = patched  # type: ignore[attr-defined]


@contextmanager
def children_end_with_this_process() -> Iterator[None]:
    """While inside, SIGTERM acts as Ctrl-C; on leaving, the children started through
    die_with_this_process that still run are terminated."""
    # Only the main thread may set a handler (a command invoked from another thread, as
    # some test harnesses do, keeps SIGTERM's).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_sigint) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        terminate_children()


def terminate_children() -> None:
    """SIGTERM to every child started here that still runs; SIGKILL after a grace time."""
    running = [child for child in list(_children) if child.poll() is None]
    for child in running:
        with suppress(ProcessLookupError):
            child.terminate()
    for child in running:
        try:
            child.wait(timeout=TERMINATE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

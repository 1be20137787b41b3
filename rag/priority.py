"""Writers yield the CPU to readers: an ingest's work runs in a thread at a lower OS priority (a higher nice).

On Linux a thread's nice value is its own (`setpriority` on its thread id) and threads it starts inherit it,
so the encoders' worker threads run at the writer's priority too, while the process's other threads (the
questions being answered, in the web app) keep theirs. Raising a nice value needs no privilege; lowering it
back would, so the work runs in a thread of its own that ends with it instead of being restored. Elsewhere
(or with an increment of 0) the work runs in the calling thread, unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
MAX_NICE = 19
_LOWERED = threading.local()


def supported() -> bool:
    """True where a thread's priority can be lowered on its own (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "setpriority")


def thread_nice() -> int:
    """The calling thread's nice value (the process's where threads have none of their own)."""
    who = threading.get_native_id() if supported() else 0
    return os.getpriority(os.PRIO_PROCESS, who)


def lower_this_thread(increment: int) -> int:
    """Add `increment` to the calling thread's nice value (at most 19); returns the new value."""
    nice = min(MAX_NICE, thread_nice() + increment)
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    return nice


def run_lowered(work: Callable[[], T], increment: int) -> T:
    """`work()` in a thread `increment` nice levels below the caller's; its result, or its exception, re-raised.

    Nested calls (work that calls `run_lowered` again) run in place: the thread is already lowered.
    """
    if increment <= 0 or not supported() or getattr(_LOWERED, "active", False):
        return work()
    out: dict[str, object] = {}
    context = contextvars.copy_context()  # the caller's context variables (rag.service runs writers in one)

    def body() -> None:
        _LOWERED.active = True
        with contextlib.suppress(OSError):  # not permitted here (a sandbox): run at the caller's priority
            lower_this_thread(increment)
        try:
            out["result"] = context.run(work)
        except BaseException as exc:  # handed to the caller, who raises it
            out["error"] = exc

    # A daemon: Ctrl-C in the caller ends the process without waiting for the encoders (an interrupted ingest
    # resumes from its embedding checkpoints, rag/embcache.py).
    worker = threading.Thread(target=body, name="writer-lowered", daemon=True)
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["result"]  # type: ignore[return-value]

"""The thread team that runs the CPU kernels: serial ``nogil`` Numba kernels shared by the
calling thread and helper threads, which claim work items from one atomic counter.

Why not ``parallel=True``: a Numba ``prange`` kernel costs 0.4-0.6 s more to compile than
the same serial kernel (the outlined gufunc and its launcher go through LLVM separately),
about half of the CPU backend's cold-start compile time. A serial kernel that loops over
``claim(counter)`` runs just as fast when several threads call it at once on the same
arguments: each item (a row of n coefficients, or a block of one) goes to exactly one
thread, the fast threads take more items, and no Python code runs between items.

:func:`launch` runs ``kernel(*args, counter)`` on the calling thread and posts it to
``get_num_threads() - 1`` helpers (fewer for fewer items). A helper that wakes after the
caller ran out of items finds the call closed and skips it, so a late helper never delays
the caller; otherwise the caller waits for the helpers still inside the kernel. Helpers are
daemon threads that sleep on a queue (no busy waiting); the team follows
:func:`~fhe_gpu.ring.threads.set_num_threads` (resized at the next launch: at most
``n - 1`` helpers, each inside one kernel call at a time) and is rebuilt empty in the child
of a ``fork``. The kernels release the GIL, so Python threads (an Engine's workers) may
launch concurrently; they share the helpers.
"""
from __future__ import annotations

import os
import queue
import threading

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .threads import get_num_threads


@intrinsic
def claim(typingctx, counter):
    """The next work item: atomically ``counter[0] += 1`` on an int64 array, returning the
    old value (relaxed ordering: the caller's join with the helpers orders the data)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        one = ir.Constant(ir.IntType(64), 1)
        return builder.atomic_rmw("add", arr.data, one, "monotonic")

    return sig, codegen


class _Call:
    """One kernel call shared by its caller and helpers (see the module docstring)."""

    __slots__ = ("kernel", "args", "lock", "active", "closed", "done", "error")

    def __init__(self, kernel, args):
        self.kernel, self.args = kernel, args
        self.lock = threading.Lock()
        self.active, self.closed = 0, False
        self.done: threading.Event | None = None
        self.error: BaseException | None = None

    def help(self) -> None:
        """Run the kernel on a helper thread unless the caller has closed the call."""
        with self.lock:
            if self.closed:
                return
            self.active += 1
            kernel, args = self.kernel, self.args
        try:
            kernel(*args)
        except BaseException as exc:  # handed to the caller by finish()
            self.error = exc
        finally:
            with self.lock:
                self.active -= 1
                if self.closed and self.active == 0 and self.done is not None:
                    self.done.set()

    def finish(self) -> None:
        """Close the call (late helpers skip it), wait for the helpers inside it, drop the
        arguments (a stale queue entry must not keep large arrays alive)."""
        with self.lock:
            self.closed = True
            self.kernel = self.args = None
            if self.active:
                self.done = threading.Event()
        if self.done is not None:
            self.done.wait()
        if self.error is not None:
            raise self.error


class _Team:
    """Helper threads sleeping on one queue of calls; ``None`` tells one of them to exit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.size = 0

    def resize(self, helpers: int) -> None:
        """Start or stop helper threads until there are ``helpers`` of them."""
        with self.lock:
            while self.size < helpers:
                self.size += 1
                threading.Thread(target=self._serve, args=(self.queue,), daemon=True,
                                 name=f"fhe_gpu-kernels-{self.size}").start()
            while self.size > helpers:
                self.size -= 1
                self.queue.put(None)

    @staticmethod
    def _serve(calls: queue.SimpleQueue) -> None:
        while True:
            call = calls.get()
            if call is None:
                return
            call.help()
            del call  # not kept alive while sleeping


_TEAM = _Team()


def _new_team_in_child() -> None:
    """The child of a fork has none of its parent's helper threads."""
    global _TEAM
    _TEAM = _Team()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_team_in_child)


def launch(kernel, items: int, *args) -> None:
    """Run ``kernel(*args, counter)`` on this thread and up to ``get_num_threads() - 1``
    helpers (at most ``items - 1``); returns when all ``items`` work items are done.

    ``kernel`` is a serial ``nogil`` Numba kernel that processes the items it claims with
    :func:`claim` on ``counter`` (a fresh int64 zero) until one is ``>= items``. Exceptions
    raised on a helper are re-raised here.
    """
    counter = np.zeros(1, dtype=np.int64)
    threads = get_num_threads()
    team = _TEAM
    if team.size != threads - 1:
        team.resize(threads - 1)
    helpers = min(threads, items) - 1
    if helpers <= 0:
        kernel(*args, counter)
        return
    call = _Call(kernel, args + (counter,))
    for _ in range(helpers):
        team.queue.put(call)
    try:
        kernel(*args, counter)
    finally:
        call.finish()


__all__ = ["claim", "launch"]

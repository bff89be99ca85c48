"""The Engine's bounded request queue and its dynamic batcher.

Requests wait in arrival order. A worker takes the oldest request and gathers, from the
whole queue, later requests for the same model and input level, from any tenant, until
the batch holds ``max_batch`` ciphertext rows or ``max_wait_s`` has passed since the oldest
request arrived (Ray Serve's ``max_batch_size`` / ``batch_wait_timeout_s`` semantics), and
at most ``max_tenants`` distinct tenants (the key slab's capacity). Requests for other
models or levels keep their place. ``put`` never blocks: a full queue raises
EngineOverloadedError at once.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..errors import EngineClosedError, EngineOverloadedError


@dataclass(eq=False)
class Request:
    """One submitted ciphertext: its tenant, model, decoded ciphertext and future."""

    tenant: str
    model: str
    ct: object
    future: Future
    submitted: float
    deadline: float | None = None
    started: float | None = field(default=None)

    @property
    def rows(self) -> int:
        """Ciphertext rows (the batch axis) of this request."""
        return int(self.ct.data.shape[0])

    @property
    def key(self) -> tuple:
        """What requests must share to be batched: model and level."""
        return (self.model, self.ct.level)


class Batcher:
    """Bounded FIFO of :class:`Request` with batch formation (thread-safe)."""

    def __init__(self, max_batch: int, max_wait_s: float, max_queue: int,
                 max_tenants: int, on_depth=None):
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.max_queue = int(max_queue)
        self.max_tenants = int(max_tenants)
        self._queue: deque[Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._on_depth = on_depth

    def __len__(self):
        return len(self._queue)

    def check_room(self) -> None:
        """Raise EngineOverloadedError (full) or EngineClosedError (closed)."""
        if self._closed:
            raise EngineClosedError("the Engine is closed: it accepts no new requests")
        if len(self._queue) >= self.max_queue:
            raise EngineOverloadedError(
                f"queue full: {len(self._queue)} requests waiting (max_queue="
                f"{self.max_queue}); retry later")

    def put(self, req: Request) -> None:
        """Enqueue, or raise EngineOverloadedError (full) / EngineClosedError (closed)."""
        with self._cond:
            self.check_room()
            self._queue.append(req)
            self._depth()
            self._cond.notify()

    def close(self) -> None:
        """Refuse new requests; workers drain what is queued, then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def next_batch(self) -> list[Request] | None:
        """The next batch (blocking), or None once closed and empty."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, tenants = [first], {first.tenant}
            rows = first.rows
            until = first.submitted + self.max_wait_s
            while rows < self.max_batch:
                rows = self._gather(first.key, batch, tenants, rows)
                left = until - time.monotonic()
                if rows >= self.max_batch or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            self._depth()
            if self._queue:
                self._cond.notify()
            return batch

    def _gather(self, key, batch: list, tenants: set, rows: int) -> int:
        """Move queued requests matching ``key`` into ``batch`` while they fit."""
        kept = deque()
        while self._queue:
            req = self._queue.popleft()
            fits = rows + req.rows <= self.max_batch and (
                req.tenant in tenants or len(tenants) < self.max_tenants)
            if req.key == key and fits:
                batch.append(req)
                tenants.add(req.tenant)
                rows += req.rows
            else:
                kept.append(req)
        self._queue = kept
        return rows

    def _depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._queue))

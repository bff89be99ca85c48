"""Latency-bounded admission: refuse a request whose predicted latency exceeds a target.

A full queue is one bound (``max_queue``); a latency target is the other a proxy
promises (as a queue timeout in Ray Serve or Triton): under overload an accepted request
waits for the batches ahead of it, so with a deep queue its latency grows with the offered
rate. Here a request is refused at once (EngineOverloadedError, HTTP 429) when

    predicted = remaining time of the soonest-free worker's batch (0 if one is idle)
              + ceil(batches ahead and its own / workers) * batch time
              + max_wait (the batcher's gathering time)

exceeds ``max_latency_s``, the batch time being a moving average (EWMA, weight 1/4) of the
measured wall time of whole batches (the first batch, which fills caches, is not counted).
A request that finds a worker idle and nothing queued is always admitted: an idle server
serves, and its batches keep the average current.
"""
from __future__ import annotations

import math
import threading
import time

from ..errors import EngineOverloadedError

#: weight of the newest batch in the moving average of batch times
EWMA_WEIGHT = 0.25


class LatencyAdmission:
    """Predicts each new request's latency and refuses those over ``max_latency_s``."""

    def __init__(self, max_latency_s: float, max_batch: int, max_wait_s: float, workers: int):
        self.max_latency_s = float(max_latency_s)
        self.max_batch, self.max_wait_s = int(max_batch), float(max_wait_s)
        self.workers = int(workers)
        self.batch_s: float | None = None
        self._batches = 0
        self._running: dict[int, float] = {}
        self._lock = threading.Lock()

    def started(self) -> None:
        """The calling worker began a batch."""
        with self._lock:
            self._running[threading.get_ident()] = time.monotonic()

    def finished(self) -> None:
        """The calling worker's batch ended: its wall time enters the average."""
        with self._lock:
            start = self._running.pop(threading.get_ident(), None)
            if start is None:
                return
            took = time.monotonic() - start
            self._batches += 1
            if self._batches == 1:
                return                     # the first batch encodes plaintexts, compiles
            self.batch_s = took if self.batch_s is None else \
                (1 - EWMA_WEIGHT) * self.batch_s + EWMA_WEIGHT * took

    def predict(self, queued: int) -> float | None:
        """Predicted latency (s) of a request joining ``queued`` waiting ones; None before
        any batch was measured, or when a worker is idle and nothing is queued."""
        with self._lock:
            t = self.batch_s
            if t is None or (queued == 0 and len(self._running) < self.workers):
                return None
            now = time.monotonic()
            busy = [max(0.0, t - (now - s)) for s in self._running.values()]
        free = 0.0 if len(busy) < self.workers else min(busy)
        batches = math.ceil((int(queued) + 1) / self.max_batch)
        return free + math.ceil(batches / self.workers) * t + self.max_wait_s

    def check(self, queued: int) -> None:
        """EngineOverloadedError when the predicted latency exceeds the target."""
        p = self.predict(queued)
        if p is not None and p > self.max_latency_s:
            raise EngineOverloadedError(
                f"predicted latency {p * 1e3:.0f} ms ({queued} requests queued, batches of "
                f"{self.batch_s * 1e3:.0f} ms) exceeds max_latency_ms="
                f"{self.max_latency_s * 1e3:g}; retry later")

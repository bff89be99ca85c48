"""Latency-bounded admission (fhe_gpu.engine.admission): predictions from measured batch
times, refusals over the target, an idle engine always admitting, the first (cold) batch
not counted; the Engine refuses at submit with EngineOverloadedError and validates the
option."""
from __future__ import annotations

import threading

import pytest

from fhe_gpu.engine import admission as adm
from fhe_gpu.engine.admission import LatencyAdmission
from fhe_gpu.errors import EngineOverloadedError, ParameterError


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(adm.time, "monotonic", c)
    return c


def batch(a: LatencyAdmission, clock: Clock, seconds: float) -> None:
    a.started()
    clock.t += seconds
    a.finished()


def test_predicts_from_measured_batches_and_refuses_over_the_target(clock):
    a = LatencyAdmission(0.1, max_batch=4, max_wait_s=0.005, workers=1)
    assert a.predict(10) is None                       # nothing measured yet
    batch(a, clock, 5.0)                               # cold first batch: not counted
    assert a.batch_s is None
    batch(a, clock, 0.04)
    assert a.batch_s == pytest.approx(0.04)
    batch(a, clock, 0.08)                              # EWMA, weight 1/4
    assert a.batch_s == pytest.approx(0.75 * 0.04 + 0.25 * 0.08)
    t = a.batch_s
    assert a.predict(0) is None                        # idle worker, empty queue: admit
    assert a.predict(3) == pytest.approx(t + 0.005)    # one batch: its own
    assert a.predict(4) == pytest.approx(2 * t + 0.005)
    a.started()                                        # a batch running for 10 ms
    clock.t += 0.01
    assert a.predict(0) == pytest.approx((t - 0.01) + t + 0.005)
    a.check(0)
    with pytest.raises(EngineOverloadedError, match=r"predicted latency \d+ ms .*"
                                                    r"max_latency_ms=100"):
        a.check(8)
    a.finished()


def test_workers_share_the_batches_ahead(clock):
    a = LatencyAdmission(1.0, max_batch=2, max_wait_s=0.0, workers=2)
    batch(a, clock, 1.0)
    batch(a, clock, 0.05)
    assert a.predict(5) == pytest.approx(2 * 0.05)     # 3 batches over 2 workers
    done = threading.Event()

    def other():
        a.started()
        done.wait()
    th = threading.Thread(target=other)
    th.start()
    a.started()                                        # both workers busy, just started
    assert a.predict(0) == pytest.approx(0.05 + 0.05)
    done.set()
    th.join()


def test_engine_validates_and_refuses_at_submit():
    import numpy as np

    import fhe_gpu as fg
    from fhe_gpu import engine
    params = fg.Parameters(log_n=10, q_bits=[50, 30, 30, 30], p_bits=[60, 60],
                           scale_bits=30, dnum=2, security=None)
    with pytest.raises(ParameterError, match="need no evaluation keys"):
        engine.Engine(params, {"m": engine.Model([engine.Linear(np.eye(4), np.zeros(4))],
                                                 vectors=1)}, "cpu")
    model = engine.Model([engine.Linear(np.ones((4, 4)), np.zeros(4))], vectors=1)
    for bad in (0, -5, "fast", True):
        with pytest.raises(ParameterError, match="max_latency_ms"):
            engine.Engine(params, {"m": model}, "cpu", max_latency_ms=bad)
    eng = engine.Engine(params, {"m": model}, "cpu", max_latency_ms=1.0)
    try:
        eng._admission.batch_s = 0.5                   # as if batches took 500 ms
        eng._batcher._queue.append(object())           # one request waiting
        with pytest.raises(EngineOverloadedError, match="max_latency_ms=1"):
            eng.submit("t", "m", b"")
        assert len(eng._batcher) == 1                  # nothing was queued
    finally:
        eng._batcher._queue.clear()
        eng.close()

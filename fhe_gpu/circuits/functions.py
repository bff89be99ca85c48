"""A catalogue of activations as Chebyshev interpolants, and 1/sqrt by a Chebyshev seed and
Newton steps.

``activation(name)`` returns a :class:`~fhe_gpu.circuits.polynomial.Chebyshev` fitted on
the function's default interval at its default degree (both overridable); each reports its
fit error (``p.max_error``). ``inv_sqrt(ev, ct, ...)`` evaluates 1/sqrt(x) on an interval
[lo, hi] of positive numbers: a low-degree Chebyshev seed y_0, then Newton steps
y <- y * (3 - x y^2) / 2, each 2 levels; ``inv_sqrt_plain`` is its cleartext twin.
"""
from __future__ import annotations

import math

import numpy as np

from ..ckks import CIPHERTEXT_TYPES, Ciphertext, Evaluator
from ..errors import LevelError, ParameterError
from .polynomial import Chebyshev, _interval, evaluate


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def _gelu(x):
    x = np.asarray(x)
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _silu(x):
    return np.asarray(x) * _sigmoid(x)


#: name -> (function, default interval, default degree)
ACTIVATIONS = {
    "sigmoid": (_sigmoid, (-8.0, 8.0), 59),
    "tanh": (np.tanh, (-4.0, 4.0), 59),
    "gelu": (_gelu, (-8.0, 8.0), 59),
    "silu": (_silu, (-8.0, 8.0), 59),
    "exp": (np.exp, (-8.0, 0.0), 27),
}


def activation(name: str, interval=None, degree: int | None = None) -> Chebyshev:
    """The Chebyshev interpolant of a named activation (see :data:`ACTIVATIONS`) on
    ``interval`` (default per function) at ``degree`` (default per function)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ParameterError(f"unknown activation {name!r}: expected one of "
                             f"{sorted(ACTIVATIONS)}")
    f, default_interval, default_degree = ACTIVATIONS[name]
    return Chebyshev.fit(f, default_interval if interval is None else interval,
                         default_degree if degree is None else degree, name=name)


def inv_sqrt_seed(interval=(0.01, 1.0), degree: int = 31) -> Chebyshev:
    """The Chebyshev seed of 1/sqrt(x) on ``interval`` (positive)."""
    lo, hi = _positive_interval(interval)
    return Chebyshev.fit(lambda x: 1.0 / np.sqrt(x), (lo, hi), degree, name="inv_sqrt seed")


def inv_sqrt_depth(interval=(0.01, 1.0), degree: int = 31, newton: int = 2) -> int:
    """Levels :func:`inv_sqrt` consumes: the seed's, plus 2 per Newton step."""
    return inv_sqrt_seed(interval, degree).evaluation_depth() + 2 * _steps(newton)


def inv_sqrt(ev: Evaluator, ct: Ciphertext, interval=(0.01, 1.0), degree: int = 31,
             newton: int = 2, assume_in_interval: bool = False) -> Ciphertext:
    """1/sqrt(x) slot-wise for x in ``interval``: Chebyshev seed of ``degree``, then
    ``newton`` steps y <- 1.5 y - 0.5 x y^3 (2 levels each: x*y and y*y in parallel, then
    their product); the output scale is the product of the steps' scales (close to the
    input's when the primes are close to it)."""
    seed = inv_sqrt_seed(interval, degree)
    need = seed.evaluation_depth() + 2 * _steps(newton)
    if not isinstance(ct, CIPHERTEXT_TYPES):
        raise ParameterError(f"inv_sqrt needs a Ciphertext, got {type(ct).__name__}")
    if ct.level < need:
        raise LevelError(f"inv_sqrt (seed degree {degree}, {newton} Newton steps) needs "
                         f"{need} levels, ciphertext has {ct.level}")
    y = evaluate(ev, ct, seed, assume_in_interval=assume_in_interval)
    bound = 1.0 / math.sqrt(seed.interval[0])
    for _ in range(_steps(newton)):
        y = ev.assume_bound(y, bound * 1.5)
        y = _newton_step(ev, ct, y)
    return y


def _newton_step(ev: Evaluator, x: Ciphertext, y: Ciphertext) -> Ciphertext:
    """1.5 y - 0.5 x y^3 at y's scale, two levels below y."""
    xy = ev.mul(ev.drop_level(x, y.level), y)
    yy = ev.mul(y, y)
    half_xy3 = ev.mul_by_scale(ev.mul(xy, yy), 0.5)
    lead = ev.drop_level(ev.mul_to_scale(y, 1.5, half_xy3.scale), half_xy3.level)
    return ev.sub(lead, half_xy3)


def inv_sqrt_plain(x, interval=(0.01, 1.0), degree: int = 31, newton: int = 2):
    """The cleartext twin of :func:`inv_sqrt` (same seed, same Newton steps)."""
    x = np.asarray(x, dtype=np.float64)
    y = inv_sqrt_seed(interval, degree)(x)
    for _ in range(_steps(newton)):
        y = 1.5 * y - 0.5 * x * y ** 3
    return y


def _positive_interval(interval):
    lo, hi = _interval(interval)
    if not lo > 0.0:
        raise ParameterError(f"1/sqrt needs a positive finite interval 0 < lo < hi, got "
                             f"({lo}, {hi})")
    return lo, hi


def _steps(newton) -> int:
    if isinstance(newton, bool) or not isinstance(newton, int) or newton < 0:
        raise ParameterError(f"newton must be a non-negative integer, got {newton!r}")
    return newton

"""EvalMod of bootstrapping: t/q0 = I + eps (I an integer with |I| < K) to eps, on slots
holding u = (I + eps) / K in [-1, 1].

sin(2 pi x) / (2 pi) = eps + O(eps^3) removes the integer I. It is computed as
cos(2 pi (x - 1/4)) from c_0 = cos(2 pi (K u - 1/4) / 2^r) (a Chebyshev interpolant on
[-1, 1], degree d) and r double-angle steps c_{j+1} = 2 c_j^2 - 1: depth
ceil(log2(d + 1)) + r. The interval K comes from the Hamming weight h of the secret
ModRaise runs under: I_k = round((c0 + c1 s)_k / q0) is a sum of h + 1 terms uniform in
[-1/2, 1/2] (|I| <= (h + 1)/2 always; its standard deviation is sqrt((h + 1) / 12)).
"""
from __future__ import annotations

import math

import numpy as np

from .polynomial import Chebyshev, evaluate

#: log2 of the probability, per bootstrap of one ciphertext, that some |I_k| exceeds K
FAILURE_LOG2 = -40


def interval_bound(weight: int, n: int) -> int:
    """K for a secret of Hamming weight ``weight`` at ring degree ``n``: 1 plus the smaller
    of the exact bound ceil((h + 1)/2) and the Gaussian tail bound z * sigma with
    n * P(|N(0, sigma)| > z sigma) <= 2^FAILURE_LOG2 (conservative: a sum of uniforms has
    lighter tails than the Gaussian of its variance)."""
    h = int(weight)
    sigma = math.sqrt((h + 1) / 12.0)
    target = 2.0 ** FAILURE_LOG2 / n
    z = 1.0
    while math.erfc(z / math.sqrt(2.0)) > target:
        z += 0.01
    return 1 + min(math.ceil((h + 1) / 2), math.ceil(z * sigma))


class EvalMod:
    """u = x / K -> cos(2 pi (x - 1/4)) = sin(2 pi x) on slots (see the module doc)."""

    def __init__(self, K: int, degree: int, double_angle: int):
        self.K, self.double_angle = int(K), int(double_angle)
        turns = 2.0 ** self.double_angle

        def seed(u):
            return np.cos(2.0 * np.pi * (self.K * u - 0.25) / turns)
        self.poly = Chebyshev.fit(seed, (-1.0, 1.0), int(degree), name="EvalMod cosine")

    @property
    def depth(self) -> int:
        """Levels consumed: ceil(log2(degree + 1)) + double-angle steps."""
        return self.poly.depth + self.double_angle

    def plain(self, u: np.ndarray) -> np.ndarray:
        """The cleartext twin: the same polynomial and double-angle steps on NumPy."""
        c = self.poly(u)
        for _ in range(self.double_angle):
            c = 2.0 * c * c - 1.0
        return c

    def apply(self, ev, ct):
        """sin(2 pi K u) for u in [-1, 1] on the slots of ``ct`` (real values): the
        interval is the promise of K's failure bound, so it is assumed, not checked."""
        c = ev.assume_bound(evaluate(ev, ct, self.poly, scale=ct.scale, assume_in_interval=True),
                            1.0 + 1e-3)
        for _ in range(self.double_angle):
            sq = ev.square(c)
            c = ev.assume_bound(ev.add(ev.add(sq, sq), -1.0), 1.0 + 1e-3)
        return c

    def __repr__(self):
        return (f"EvalMod(K={self.K}, degree {self.poly.degree}, {self.double_angle} "
                f"double angles, depth {self.depth})")

"""Bootstrapping presets: the modulus chain, level budget, secret and EvalMod settings.

The chain, bottom to top: q0 | ``levels_left`` primes of the default scale (what a
bootstrapped ciphertext can still spend) | SlotsToCoeffs (``stc_budget`` primes) | EvalMod
(depth primes of q0's size: its products keep a scale close to q0) | CoeffsToSlots
(``cts_budget`` primes). q0 / scale (the message ratio) keeps m / q0 small, where
sin(2 pi x) / (2 pi) is close to x.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ..ckks import Parameters
from ..errors import ParameterError
from .dft import bsgs_rotations, bsgs_split, dft_factors
from .evalmod import interval_bound
from .polynomial import polynomial_depth


@dataclass(frozen=True)
class BootstrapParameters:
    """A bootstrapping preset (see the module doc); ``params`` are its CKKS Parameters.

    ``sparse_weight``: Hamming weight of the secret ModRaise runs under: the ephemeral
    secret when ``encapsulate`` (the main secret stays dense ternary), else the main
    secret itself (``KeyGenerator(ctx, hamming_weight=sparse_weight)``).
    """

    name: str
    log_n: int
    levels_left: int
    scale_bits: int
    q0_bits: int
    cts_budget: int
    stc_budget: int
    sparse_weight: int
    encapsulate: bool
    degree: int
    double_angle: int
    dnum: int
    security: int | None
    message_bound: float = 1.0
    residual_bits: int = 16
    log_slots: int | None = None
    params: Parameters = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.log_slots is not None and not \
                max(self.cts_budget, self.stc_budget) <= self.log_slots < self.log_n:
            raise ParameterError(f"log_slots must be in [{max(self.cts_budget, self.stc_budget)}"
                                 f", {self.log_n - 1}] (the level budgets and N/2), got "
                                 f"{self.log_slots}")
        q_bits = [self.q0_bits] + [self.scale_bits] * (self.levels_left + self.stc_budget) \
            + [self.q0_bits] * (self.evalmod_depth + self.cts_budget)
        params = Parameters(log_n=self.log_n, q_bits=q_bits, scale_bits=self.scale_bits,
                            dnum=self.dnum, security=self.security)
        object.__setattr__(self, "params", params)

    @property
    def slots(self) -> int:
        """Slots bootstrapped: N/2 (full packing) or 2^log_slots (sparse: the output holds
        the input's slots summed with period ``slots``, i.e. replicated when the slots from
        ``slots`` on are zero)."""
        return self.params.slots if self.log_slots is None else 1 << self.log_slots

    @property
    def subsum_steps(self) -> list[int]:
        """Rotations of the trace onto the sparse subring (none for full slots)."""
        steps, k = [], self.slots
        while k < self.params.slots:
            steps.append(k)
            k *= 2
        return steps

    @property
    def K(self) -> int:
        """EvalMod's interval [-K, K], from the Hamming weight (evalmod.interval_bound)."""
        return interval_bound(self.sparse_weight, self.params.n)

    @property
    def evalmod_depth(self) -> int:
        """Levels of EvalMod: the cosine's Chebyshev depth plus the double angles."""
        return polynomial_depth(self.degree) + self.double_angle

    @property
    def depth(self) -> int:
        """Levels one bootstrap consumes."""
        return self.cts_budget + self.evalmod_depth + self.stc_budget

    @property
    def output_level(self) -> int:
        """Level of a bootstrapped ciphertext (= levels_left)."""
        return self.params.max_level - self.depth

    @property
    def stages(self) -> dict:
        """Levels per stage: {"CoeffsToSlots": .., "EvalMod": .., "SlotsToCoeffs": ..,
        "left": ..}."""
        return {"CoeffsToSlots": self.cts_budget, "EvalMod": self.evalmod_depth,
                "SlotsToCoeffs": self.stc_budget, "left": self.output_level}

    @cached_property
    def rotations(self) -> list[int]:
        """Every slot rotation of the two homomorphic DFTs (conjugation comes on top);
        computed once (0.3 s at N = 2^16)."""
        n = self.slots
        steps: set[int] = set(self.subsum_steps)
        for inverse, budget in ((True, self.cts_budget), (False, self.stc_budget)):
            for d in dft_factors(n, 4 * n, budget, inverse):
                steps |= set(bsgs_rotations(bsgs_split(d, n)[2], n))
        return sorted(steps)

    @classmethod
    def preset(cls, name: str) -> "BootstrapParameters":
        """A named preset (:meth:`presets` lists them)."""
        if name not in PRESETS:
            raise ParameterError(f"no bootstrapping preset {name!r}: choose one of "
                                 f"{sorted(PRESETS)}")
        return cls(name=name, **PRESETS[name])

    @staticmethod
    def presets() -> list[str]:
        """Names of the presets: N16 ones pass the 128-bit check, toy ones are insecure."""
        return sorted(PRESETS)

    def describe(self) -> str:
        """One line: N, chain, log QP, security, levels per stage."""
        p = self.params
        sec = f"{p.security}-bit" if p.security else "INSECURE (toy, for tests)"
        return (f"{self.name}: N=2^{p.log_n}, {self.slots} slots, {len(p.q_primes)} primes, log QP "
                f"{p.log_qp:.0f}, {sec}; K={self.K} (h={self.sparse_weight}"
                f"{', encapsulated' if self.encapsulate else ''}), levels {self.stages}")


_N16 = dict(log_n=16, scale_bits=50, q0_bits=60, cts_budget=3, stc_budget=3, degree=31,
            dnum=3, security=128)
_TOY = dict(scale_bits=40, q0_bits=52, degree=31, dnum=3, security=None, residual_bits=12)

#: name -> settings. N16: 128-bit, dense main secret + encapsulation (h = 32), or a sparse
#: main secret (h = 192); N16-deep: 8 levels left, paid with dnum 4 (a third more key
#: bytes and key-switching work). toy-*: insecure small rings for CI (encapsulated, h = 32; -s128:
#: 128 sparse slots).
PRESETS = {
    "N16": dict(_N16, levels_left=6, sparse_weight=32, encapsulate=True, double_angle=4),
    "N16-deep": dict(_N16, levels_left=8, sparse_weight=32, encapsulate=True, double_angle=4,
                     dnum=4),
    "N16-sparse": dict(_N16, levels_left=4, sparse_weight=192, encapsulate=False,
                       double_angle=6),
    "toy-N10": dict(_TOY, log_n=10, levels_left=2, cts_budget=2, stc_budget=2,
                    sparse_weight=32, encapsulate=True, double_angle=4),
    "toy-N11": dict(_TOY, log_n=11, levels_left=2, cts_budget=2, stc_budget=2,
                    sparse_weight=32, encapsulate=True, double_angle=4),
    "toy-N12": dict(_TOY, log_n=12, levels_left=2, cts_budget=3, stc_budget=3,
                    sparse_weight=32, encapsulate=True, double_angle=4),
    "toy-N11-s128": dict(_TOY, log_n=11, levels_left=2, cts_budget=2, stc_budget=2,
                         sparse_weight=32, encapsulate=True, double_angle=4, log_slots=7),
    "toy-N11-sparse": dict(_TOY, log_n=11, levels_left=2, cts_budget=2, stc_budget=2,
                           sparse_weight=192, encapsulate=False, double_angle=6),
}

__all__ = ["BootstrapParameters", "PRESETS"]

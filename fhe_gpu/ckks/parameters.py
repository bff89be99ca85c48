"""CKKS parameters: ring degree, the Q chain, special primes, scale, digits, security."""
from __future__ import annotations

import hashlib
import math
import struct

from ..errors import ParameterError
from ..ring.numbers import generate_primes
from ..rlwe import wire_hook
from ..rlwe.security import MAX_LOG_QP, check_security, log2_product

_PRESETS = {
    # name: (log_n, q_bits, p_bits, scale_bits, dnum)
    "N13": (13, [60, 40, 40], [60], 40, None),
    "N14": (14, [60] + [40] * 6, [60, 60], 40, None),
    "N15": (15, [60] + [40] * 13, [60] * 4, 40, 3),
    "N16": (16, [60] + [40] * 27, [60] * 8, 40, 3),
}
_PRESET_DOC = {
    "N13": "N=2^13, Q=[60]+2x[40], P=[60]: 2 multiplicative levels (SEAL's example chain)",
    "N14": "N=2^14, Q=[60]+6x[40], P=2x[60], dnum 4: 6 levels (OpenFHE K=2)",
    "N15": "N=2^15, Q=[60]+13x[40], P=4x[60], dnum 3: 13 levels",
    "N16": "N=2^16, Q=[60]+27x[40], P=8x[60], dnum 3: 27 levels",
}
MIN_LOG_N, MAX_LOG_N = 2, 17


class Parameters:
    """A CKKS parameter set.

    Parameters
    ----------
    log_n : log2 of the ring degree N (slots = N/2).
    q_bits : bit sizes of the ciphertext primes q_0..q_L (q_0 first: the base prime).
    p_bits : bit sizes of the special primes of hybrid key switching; None sizes P to cover
        the largest digit (60-bit primes, as OpenFHE does).
    scale_bits : default encoding scale 2^scale_bits.
    dnum : key-switching digits at full level; None -> ceil(len(q_bits)/len(p_bits)), or
        min(3, len(q_bits)) when p_bits is None.
    security : 128, 192, 256, or None to opt out of the check (logged).

    Raises ParameterError on malformed sizes or a key-switching digit larger than P by more
    than one bit (key switching would then lose the digit's excess bits of precision), and
    SecurityError when the actual log2(QP) of the generated primes exceeds the
    HomomorphicEncryption.org bound for N. A digit of about P's size (SEAL's chain [60, 40,
    40] with one 60-bit special prime) is allowed: each key switch then adds noise of about
    the scale's size divided by 2^(log P - log digit), a cost the noise model predicts.
    Parameters are immutable.
    """

    def __init__(self, log_n: int, q_bits, p_bits=None, scale_bits: int = 40, dnum=None,
                 security=128):
        init = object.__setattr__
        init(self, "log_n", _int_in("log_n", log_n, MIN_LOG_N, MAX_LOG_N))
        q_bits = [_int_in("q_bits entry", b, 2, 61) for b in _listify("q_bits", q_bits)]
        nq = len(q_bits)
        if p_bits is None:
            dnum = min(3, nq) if dnum is None else _int_in("dnum", dnum, 1, nq)
            p_bits = _auto_p_bits(q_bits, dnum)
        p_bits = [_int_in("p_bits entry", b, 2, 61) for b in _listify("p_bits", p_bits)]
        default = math.ceil(nq / len(p_bits))
        init(self, "q_bits", q_bits)
        init(self, "p_bits", p_bits)
        init(self, "scale_bits", _int_in("scale_bits", scale_bits, 1, 120))
        init(self, "dnum", default if dnum is None else _int_in("dnum", dnum, 1, nq))
        if security is not None and (isinstance(security, bool) or security not in MAX_LOG_QP):
            raise ParameterError(f"security={security!r} is not supported: use 128, 192, 256 "
                                 f"or None")
        init(self, "security", security)
        check_security(self.log_n, sum(q_bits) + sum(p_bits), security)
        q_primes, p_primes = self._primes()
        init(self, "q_primes", q_primes)
        init(self, "p_primes", p_primes)
        init(self, "log_qp", log2_product(q_primes + p_primes))
        check_security(self.log_n, self.log_qp, security, quiet=True)
        _check_digits(q_primes, p_primes, self.dnum)

    def __setattr__(self, name, value):
        raise AttributeError(f"Parameters are immutable: cannot set {name!r} (make a new "
                             f"Parameters object)")

    def _primes(self):
        used: list[int] = []
        for bits in self.q_bits + self.p_bits:
            try:
                used += generate_primes(self.n, bits, 1, used)
            except ValueError:
                raise ParameterError(
                    f"no unused {bits}-bit prime = 1 mod 2N={2 * self.n} is left; need "
                    f"{self.q_bits.count(bits) + self.p_bits.count(bits)} of them") from None
        nq = len(self.q_bits)
        return tuple(used[:nq]), tuple(used[nq:])

    # ------------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        """Ring degree N."""
        return 1 << self.log_n

    @property
    def slots(self) -> int:
        """Complex slots per ciphertext: N/2."""
        return self.n // 2

    @property
    def max_level(self) -> int:
        """Level of a fresh ciphertext: the number of rescales available."""
        return len(self.q_primes) - 1

    @property
    def default_scale(self) -> float:
        """2^scale_bits."""
        return float(2 ** self.scale_bits)

    @property
    def fingerprint(self) -> bytes:
        """32 bytes identifying everything a ciphertext depends on (N, primes, dnum)."""
        h = hashlib.sha256(b"fhe_gpu/ckks/v1")
        h.update(struct.pack("<III", self.log_n, self.dnum, self.scale_bits))
        for q in self.q_primes + (0,) + self.p_primes:
            h.update(struct.pack("<Q", q))
        return h.digest()

    # ------------------------------------------------------------------ wire format
    def to_bytes(self) -> bytes:
        """The wire encoding of these parameters (format: see fhe_gpu.serialize)."""
        return wire_hook.codec().dump_parameters(self)

    @classmethod
    def from_bytes(cls, data, max_bytes=None) -> "Parameters":
        """Parameters rebuilt from ``data``; the regenerated fingerprint must match the one
        written. Raises SerializationError or ContextMismatchError."""
        return wire_hook.codec().load_parameters(cls, data, max_bytes)

    # ------------------------------------------------------------------ presets
    @staticmethod
    def presets() -> dict[str, str]:
        """Preset names with a one-line description each."""
        return dict(_PRESET_DOC)

    @classmethod
    def preset(cls, name: str, security=128) -> "Parameters":
        """A named parameter set (see :meth:`presets`)."""
        if not isinstance(name, str) or name not in _PRESETS:
            raise ParameterError(f"unknown preset {name!r}: expected one of {sorted(_PRESETS)}")
        log_n, q_bits, p_bits, scale_bits, dnum = _PRESETS[name]
        return cls(log_n, q_bits, p_bits, scale_bits, dnum, security)

    @classmethod
    def suggest(cls, depth, precision_bits, security=128, log_n=None, slots=None,
                bootstrap: bool = False) -> "Parameters":
        """The smallest secure parameters for ``depth`` levels at ``precision_bits`` of
        max-error precision after them: the Q chain sized by the Simulator's prediction,
        special primes and dnum, N (the smallest secure, at least 2*``slots``, unless
        ``log_n`` is given); ``bootstrap`` adds the levels OpenFHE-style bootstrapping
        consumes. :func:`fhe_gpu.ckks.suggest.suggest` returns the same with its report
        (log QP against the bound, key sizes, predicted precision). Raises ParameterError or
        SecurityError naming the requirement that cannot be met and by how much."""
        from .suggest import suggest
        return suggest(depth, precision_bits, security, log_n, slots, bootstrap).params

    def __eq__(self, other):
        return isinstance(other, Parameters) and other.fingerprint == self.fingerprint

    def __hash__(self):
        return hash(self.fingerprint)

    def __repr__(self):
        return (f"Parameters(log_n={self.log_n}, q_bits={self.q_bits}, p_bits={self.p_bits}, "
                f"scale_bits={self.scale_bits}, dnum={self.dnum}, security={self.security})")


def _digit_logs(q_primes, dnum: int) -> list[float]:
    """log2 of each key-switching digit's prime product at full level."""
    alpha = math.ceil(len(q_primes) / dnum)
    return [log2_product(q_primes[s:s + alpha]) for s in range(0, len(q_primes), alpha)]


def _auto_p_bits(q_bits, dnum: int) -> list[int]:
    """60-bit special primes, as many as cover the largest digit (OpenFHE's choice)."""
    alpha = math.ceil(len(q_bits) / dnum)
    largest = max(sum(q_bits[s:s + alpha]) for s in range(0, len(q_bits), alpha))
    return [60] * max(1, math.ceil(largest / 60))


def _check_digits(q_primes, p_primes, dnum: int) -> None:
    """ParameterError when the largest digit exceeds P by more than one bit."""
    log_p = log2_product(p_primes)
    worst = max(_digit_logs(q_primes, dnum))
    if worst > log_p + 1:
        raise ParameterError(
            f"the largest key-switching digit has {worst:.1f} bits, but P = prod(p_bits) has "
            f"only {log_p:.1f}: key switching would lose about {worst - log_p:.0f} bits. Use a "
            f"larger dnum, more or larger special primes, or p_bits=None to size P "
            f"automatically")


def _listify(name, value) -> list:
    try:
        out = list(value)
    except TypeError:
        raise ParameterError(f"{name} must be a list of bit sizes, got {value!r}") from None
    if not out:
        raise ParameterError(f"{name} must hold at least one bit size, got {value!r}")
    return out


def _int_in(name, value, lo, hi) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ParameterError(f"{name}={value} is out of range: needs {lo} <= {name} <= {hi}")
    return value

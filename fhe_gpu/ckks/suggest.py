"""Parameters from requirements: ``Parameters.suggest`` and the report of ``fhe-gpu params``.

Given a multiplicative depth, a precision (bits of max-error precision after that depth)
and a security level, :func:`suggest` returns a :class:`Suggestion`: a secure Parameters
object and the figures that justify it. The method:

* **Scale.** The rounding noise of CKKS does not depend on the scale, so the precision
  after d levels is the scale minus a cost that depends on N and d only. The cost is
  predicted with the Simulator on a chain of d ct x ct products of unit-modulus values
  (each relinearized and rescaled), and the scale is the smallest for which the predicted
  precision exceeds the requirement by ``MARGIN_BITS`` (the Simulator's accuracy).
* **Chain.** A base prime of scale + ``HEADROOM_BITS`` bits (at most 61: room for values
  up to 2^HEADROOM_BITS at the last level) and d primes of the scale's size.
* **Key switching.** Special primes of 60 bits, enough to exceed the largest digit by the
  margin at which the key-switching noise stays 4 bits under the rescale rounding (a
  digit as large as P costs rotations ~7 bits, :mod:`fhe_gpu.ckks.noise`); dnum the
  smallest (fewest digits: the fastest key switch and the smallest keys) whose log QP
  keeps under the HomomorphicEncryption.org bound.
* **Ring.** N the smallest power of two (at least 2 * ``slots``) for which all of this is
  secure, unless ``log_n`` is given.

Requests that cannot be met raise SecurityError (log QP over the bound at the largest N
allowed: by how many bits, and what to change) or ParameterError (a precision beyond what
a 61-bit base prime can hold).

**Bootstrapping.** fhe_gpu has no bootstrapping yet; with ``bootstrap=True`` its level
and modulus consumption is modelled on OpenFHE's CKKS bootstrapping (FLEXIBLEAUTO, hybrid
key switching), see :func:`bootstrap_configs`: a 60-bit base prime, 59-bit scaling primes,
and levels = ``OpenFHE GetBootstrapDepth(levelBudget, secret)`` + the levels wanted after
it, with OpenFHE's EvalMod depths (Chebyshev degree 88 + 6 double-angle steps for a dense
uniform-ternary secret: 14 levels; degree 44 + 3 for a sparse secret, also used by the
sparse-encapsulated mode: 10 levels) and P sized as OpenFHE's EstimateLogP does (60-bit
primes covering the largest digit plus one bit). A sparse secret alone is outside the
standard's table and refused; sparse-encapsulated keeps the dense key's security. A
configuration fits when at least one level is left after bootstrapping under the bound: at
N = 2^16, 128-bit, dnum 3, 59/60-bit, the dense secret with level budget {3,3} is refused
(20 levels, log QP 1779 > 1747 with one left) and sparse-encapsulated fits with 4 levels
left. The suggested fhe_gpu chain then uses 58-bit scaling primes (fhe_gpu keeps 2 bits of
headroom at level 1 where OpenFHE's FLEXIBLEAUTO rescales by a correction factor), a
chain no larger than the one modelled; the bootstrapping's own error is not predicted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError, SecurityError
from ..rlwe.encryptor import rounding_variance
from ..rlwe.sampling import SIGMA
from ..rlwe.security import MAX_LOG_QP
from .parameters import MAX_LOG_N, Parameters

#: bits of the base prime above the scale (room for |values| up to 2^HEADROOM_BITS)
HEADROOM_BITS = 20
#: the largest scale suggested (a 61-bit base prime keeps 6 bits for values and headroom)
MAX_SCALE_BITS = 55
MIN_SCALE_BITS = 20
#: bits the predicted precision must exceed the requirement by (the Simulator's accuracy)
MARGIN_BITS = 1.0
SPECIAL_BITS = 60
MIN_LOG_N = 10

#: bits below the base prime of the scaling primes of a bootstrapping chain: a product at
#: level 1 needs 2 * scale + 2 bits (fhe_gpu's headroom), so 58-bit primes under a 60-bit
#: base where OpenFHE's FLEXIBLEAUTO uses 59 (a chain no larger than the one modelled)
BOOTSTRAP_HEADROOM_BITS = 2
#: OpenFHE's EvalMod depth per secret distribution (GetModDepthInternal)
_EVALMOD_DEPTH = {"uniform": 8 + 6, "sparse": 7 + 3, "sparse-encapsulated": 7 + 3}
SECRETS = tuple(_EVALMOD_DEPTH)


@dataclass(frozen=True)
class BootstrapConfig:
    """One modelled OpenFHE bootstrapping configuration and whether it fits the bound:
    ``depth`` levels consumed, ``levels_left`` the most levels a circuit keeps after it
    under the bound (None when the secret is refused outright), ``log_qp`` of the chain
    with ``levels_left`` levels (or with none, when it does not fit)."""

    secret: str
    budget: tuple
    log_n: int
    scale_bits: int
    first_bits: int
    dnum: int
    security: int
    depth: int
    levels_left: int | None
    log_qp: float
    bound: int
    reason: str = ""

    @property
    def fits(self) -> bool:
        """At least one level left after bootstrapping, under the bound."""
        return self.levels_left is not None and self.levels_left >= 1

    def __str__(self):
        what = (f"{self.secret} secret, level budget {{{self.budget[0]},{self.budget[1]}}}, "
                f"{self.scale_bits}/{self.first_bits}-bit, dnum {self.dnum}: bootstrapping "
                f"uses {self.depth} levels")
        if self.fits:
            return f"{what}; fits with {self.levels_left} levels left (log QP " \
                   f"{self.log_qp:.0f} <= {self.bound})"
        return f"{what}; refused: {self.reason}"


def bootstrap_depth(secret: str, budget) -> int:
    """Levels OpenFHE's bootstrapping consumes: EvalMod's depth for the secret plus the
    level budget of CoeffsToSlots and SlotsToCoeffs (GetBootstrapDepth)."""
    if secret not in _EVALMOD_DEPTH:
        raise ParameterError(f"secret must be one of {SECRETS}, got {secret!r:.40}")
    return _EVALMOD_DEPTH[secret] + int(budget[0]) + int(budget[1])


def _openfhe_log_qp(levels: int, scale_bits: int, first_bits: int, dnum: int) -> float:
    """log2 QP of OpenFHE's chain: q0 + ``levels`` scaling primes, P from EstimateLogP."""
    towers = levels + 1
    per = math.ceil(towers / dnum)
    digit = first_bits + (per - 1) * scale_bits
    special = math.ceil((digit + 1) / SPECIAL_BITS) * SPECIAL_BITS
    return first_bits + levels * scale_bits + special


def bootstrap_configs(log_n: int = 16, security: int = 128, scale_bits: int = 59,
                      first_bits: int = 60, dnum: int = 3,
                      budgets=((2, 2), (3, 3), (4, 4))) -> list[BootstrapConfig]:
    """Every (secret, level budget) of OpenFHE's bootstrapping at these settings, with the
    levels it leaves under the ``security`` bound (see the module docstring)."""
    bound = MAX_LOG_QP[security][log_n]
    out = []
    for secret in SECRETS:
        for budget in budgets:
            depth = bootstrap_depth(secret, budget)
            common = dict(secret=secret, budget=tuple(budget), log_n=log_n,
                          scale_bits=scale_bits, first_bits=first_bits, dnum=dnum,
                          security=security, depth=depth, bound=bound)
            if secret == "sparse":
                out.append(BootstrapConfig(**common, levels_left=None,
                                           log_qp=_openfhe_log_qp(depth, scale_bits,
                                                                  first_bits, dnum),
                                           reason="a sparse secret is outside the "
                                                  "HomomorphicEncryption.org table"))
                continue
            left = -1
            while _openfhe_log_qp(depth + left + 1, scale_bits, first_bits, dnum) <= bound:
                left += 1
            log_qp = _openfhe_log_qp(depth + max(left, 0), scale_bits, first_bits, dnum)
            reason = "" if left >= 1 else (
                f"log QP {_openfhe_log_qp(depth + 1, scale_bits, first_bits, dnum):.0f} "
                f"with one level left after its {depth} exceeds the {security}-bit bound "
                f"{bound}" + (" (it fits with none)" if left == 0 else
                              " (it does not fit even with none)"))
            out.append(BootstrapConfig(**common, levels_left=left, log_qp=log_qp,
                                       reason=reason))
    return out


def _choose_bootstrap(log_n: int, depth: int, security: int) -> BootstrapConfig | None:
    """The cheapest fitting configuration leaving ``depth`` levels: a dense secret before
    a sparse-encapsulated one, the largest level budget (fewest rotations) first."""
    configs = bootstrap_configs(log_n, security, budgets=((4, 4), (3, 3), (2, 2)))
    for secret in ("uniform", "sparse-encapsulated"):
        for c in configs:
            if c.secret == secret and c.fits and c.levels_left >= depth:
                return c
    return None


def bootstrap_rotations(slots: int, budget) -> int:
    """An estimate of the Galois keys bootstrapping needs: each of the budget's levels of
    CoeffsToSlots and SlotsToCoeffs is a radix-2^r FFT stage (r = ceil(log2(slots) /
    levels)) of 2^(r+1) - 1 diagonals, about 2*sqrt(2^(r+1)) BSGS rotations; plus
    conjugation."""
    logs = max(1, int(math.log2(slots)))
    stages = [math.ceil(logs / levels) for levels in budget for _ in range(levels)]
    return 1 + sum(2 * math.ceil(math.sqrt(2 ** (r + 1))) for r in stages)


# ---------------------------------------------------------------- the suggestion
@dataclass
class Suggestion:
    """A suggested parameter set with the figures behind it; ``str()`` is the report
    ``fhe-gpu params`` prints. ``op_ms`` (op name -> milliseconds) and ``timing`` (how they
    were measured) are filled by a calibration (:mod:`fhe_gpu.tooling.timing`)."""

    params: Parameters
    depth: int
    precision_bits: float
    security: int | None
    fresh_bits: float
    final_bits: float
    rotation_bits: float
    bootstrap: BootstrapConfig | None = None
    op_ms: dict = field(default_factory=dict)
    timing: str = ""

    @property
    def bound(self):
        """The bound on log2 QP for N at this security level (None when unchecked)."""
        return None if self.security is None else MAX_LOG_QP[self.security][self.params.log_n]

    @property
    def key_bytes(self) -> int:
        """Bytes of one switching key (relinearization, or one rotation): digits x 2 x
        (L + 1 + K) limbs x N x 8."""
        return switching_key_bytes(self.params)

    @property
    def bootstrap_keys(self) -> int:
        """Estimated Galois keys of bootstrapping (0 without bootstrapping)."""
        if self.bootstrap is None:
            return 0
        return bootstrap_rotations(self.params.slots, self.bootstrap.budget)

    def __str__(self):
        return "\n".join(report_lines(self))


def switching_key_bytes(params: Parameters) -> int:
    """Bytes of one switching key of ``params`` (as EvaluationKeys.key_bytes counts)."""
    nq = len(params.q_primes)
    digits = math.ceil(nq / math.ceil(nq / params.dnum))
    return digits * 2 * (nq + len(params.p_primes)) * params.n * 8


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2 ** 20:.1f} MiB" if nbytes < 2 ** 30 else f"{nbytes / 2 ** 30:.2f} GiB"


def _chain(bits) -> str:
    body = bits[1:]
    if body and len(set(body)) == 1:
        return f"[{bits[0]}] + {len(body)} x [{body[0]}]"
    return str(list(bits))


def _special(bits) -> str:
    return f"{len(bits)} x [{bits[0]}]" if len(set(bits)) == 1 else str(list(bits))


def report_lines(s: Suggestion) -> list[str]:
    """The report of a suggestion, line by line."""
    p = s.params
    sec = "not checked" if s.security is None else f"{s.security}-bit security"
    log_q = sum(math.log2(q) for q in p.q_primes)
    lines = [f"fhe_gpu parameters for depth {s.depth} at {s.precision_bits:g} bits of "
             f"precision, {sec}" + (" (with bootstrapping)" if s.bootstrap else ""),
             f"  ring            N = 2^{p.log_n}, {p.slots} slots",
             f"  Q chain         {_chain(p.q_bits)} bits: log Q = {log_q:.1f}, "
             f"{p.max_level} levels, scale 2^{p.scale_bits}",
             f"  key switching   P = {_special(p.p_bits)} bits, dnum {p.dnum}"]
    if s.bound is None:
        lines.append(f"  log QP          {p.log_qp:.1f} (security not checked)")
    else:
        lines.append(f"  log QP          {p.log_qp:.1f} <= {s.bound} ({s.security}-bit bound "
                     f"for N=2^{p.log_n}): margin {s.bound - p.log_qp:.1f} bits")
    key = s.key_bytes
    lines.append(f"  keys            relinearization {_mib(key)}, each rotation {_mib(key)}"
                 f"; public key {_mib(2 * (len(p.q_primes) + len(p.p_primes)) * p.n * 8)}")
    if s.bootstrap is not None:
        lines += [f"  bootstrapping   {s.bootstrap}",
                  f"                  about {s.bootstrap_keys} Galois keys: "
                  f"{_mib(s.bootstrap_keys * key)} (modelled on OpenFHE; fhe_gpu has no "
                  f"bootstrapping yet)"]
    after = " past bootstrapping (its own error not modelled)" if s.bootstrap else ""
    lines.append(f"  precision       fresh {s.fresh_bits:.1f} bits, after {s.depth} products"
                 f"{after} {s.final_bits:.1f} bits, after one rotation {s.rotation_bits:.1f} "
                 f"bits (Simulator, max-error precision; required {s.precision_bits:g} + "
                 f"{MARGIN_BITS:g} margin)")
    if s.op_ms:
        ops = ", ".join(f"{k} {v:.3g} ms" for k, v in s.op_ms.items())
        lines.append(f"  op times        {ops}")
        if s.timing:
            lines.append(f"                  ({s.timing})")
    return lines


# ---------------------------------------------------------------- the search
class _Shortfall(Exception):
    """A ring degree too small: the chain needs ``need`` bits of log QP over ``bound``."""

    def __init__(self, log_n, need, bound, scale_bits, log_q):
        super().__init__(log_n)
        self.log_n, self.need, self.bound = log_n, need, bound
        self.scale_bits, self.log_q = scale_bits, log_q


def switching_margin_bits(n: int, primes_per_digit: int) -> float:
    """Bits by which P must exceed a digit of ``primes_per_digit`` primes for the digit-mean
    term of key switching (noise.key_switch_terms) to stay 4 bits under the rounding."""
    peak_per_ratio = primes_per_digit / 2.0 * 2.0 * n / math.pi * SIGMA
    return math.log2(peak_per_ratio) - 0.5 * math.log2(rounding_variance(n) / 16.0)


def _key_switching(log_n: int, q_bits, security):
    """(p_bits, dnum) with the fewest digits whose log QP fits the bound, or None."""
    bound = math.inf if security is None else MAX_LOG_QP[security][log_n]
    nq = len(q_bits)
    for dnum in range(1, nq + 1):
        alpha = math.ceil(nq / dnum)
        if math.ceil(nq / alpha) != dnum:
            continue
        digit = max(sum(q_bits[s:s + alpha]) for s in range(0, nq, alpha))
        k = math.ceil((digit + switching_margin_bits(1 << log_n, alpha)) / SPECIAL_BITS)
        if sum(q_bits) + SPECIAL_BITS * k + 0.5 <= bound:
            return [SPECIAL_BITS] * k, dnum
    return None


def _build(log_n, q_bits, scale_bits, security) -> Parameters:
    """Parameters for the chain, or _Shortfall when no key switching fits the bound."""
    ks = _key_switching(log_n, q_bits, security)
    bound = math.inf if security is None else MAX_LOG_QP[security][log_n]
    if ks is None:
        k = math.ceil((max(q_bits) + switching_margin_bits(1 << log_n, 1)) / SPECIAL_BITS)
        raise _Shortfall(log_n, sum(q_bits) + SPECIAL_BITS * k, bound, scale_bits,
                         sum(q_bits))
    try:
        return Parameters(log_n, q_bits, ks[0], scale_bits, ks[1], security)
    except SecurityError:
        raise _Shortfall(log_n, sum(q_bits) + sum(ks[0]) + 1, bound, scale_bits,
                         sum(q_bits)) from None


def predict(params: Parameters, depth: int, start_level: int | None = None):
    """(fresh, after ``depth`` products, after one rotation) max-error precision bits of
    ``params``, by the Simulator: unit-modulus values encrypted at ``start_level`` (the
    top by default), then ``depth`` ct x ct products by fresh ciphertexts."""
    from .context import Context
    from .simulator import Simulator
    sim = Simulator(Context(params, backend="cpu"))
    rng = np.random.default_rng(0)
    level = params.max_level if start_level is None else start_level

    def unit(lv):
        return sim.encrypt(np.exp(2j * np.pi * rng.uniform(size=params.slots)), level=lv)

    ct = unit(level)
    fresh, rotated = ct.predicted_bits, sim.rotate(ct, 1).predicted_bits
    for _ in range(depth):
        ct = sim.mul(ct, unit(ct.level))
    return fresh, ct.predicted_bits, rotated


def _scale_error(precision: float, depth: int, log_n: int, scale: int) -> ParameterError:
    return ParameterError(
        f"precision_bits={precision:g} after depth {depth} needs a scale of 2^{scale} at "
        f"N=2^{log_n} (the rounding noise costs {scale - precision:.0f} bits there), above "
        f"the largest scale 2^{MAX_SCALE_BITS} a 61-bit base prime leaves room for: ask for "
        f"at most {precision - (scale - MAX_SCALE_BITS):.0f} bits")


def _params_at(log_n: int, depth: int, scale: int, security) -> Parameters:
    """The chain for ``scale`` (raised while too few NTT-friendly primes of its size
    exist), or _Shortfall."""
    while True:
        q_bits = [min(61, scale + HEADROOM_BITS)] + [scale] * depth
        try:
            return _build(log_n, q_bits, scale, security)
        except _Shortfall:
            raise
        except ParameterError as exc:
            if "prime" not in str(exc) or scale >= MAX_SCALE_BITS:
                raise
            scale += 1


def _plain(log_n: int, depth: int, precision: float, security) -> Suggestion:
    """The suggestion at one ring degree (no bootstrapping), or _Shortfall: the smallest
    scale whose predicted precision after ``depth`` meets the requirement plus margin
    (precision moves bit for bit with the scale, so two or three predictions suffice)."""
    scale = math.ceil(precision + MARGIN_BITS + log_n + 1 + 0.5 * math.log2(depth + 1))
    best, tried = None, set()
    for _ in range(6):
        scale = max(MIN_SCALE_BITS, scale)
        if scale > MAX_SCALE_BITS:
            raise _scale_error(precision, depth, log_n, scale)
        tried.add(scale)
        params = _params_at(log_n, depth, scale, security)
        fresh, final, rotated = predict(params, depth)
        slack = final - precision - MARGIN_BITS
        if slack >= 0:
            best = Suggestion(params, depth, precision, security, fresh, final, rotated)
            if slack < 1 or scale == MIN_SCALE_BITS:
                return best
            scale -= math.floor(slack)
        else:
            scale += math.ceil(-slack)
        if scale in tried:
            if best is not None:
                return best
            scale = max(tried) + 1
    if best is None:
        raise _scale_error(precision, depth, log_n, scale)
    return best


def _bootstrapped(log_n: int, depth: int, precision: float, security) -> Suggestion:
    """The suggestion with OpenFHE-style bootstrapping at one ring degree."""
    modelled = 128 if security is None else security
    config = _choose_bootstrap(log_n, depth, modelled)
    if config is None:
        need = _openfhe_log_qp(bootstrap_depth("sparse-encapsulated", (4, 4)) + max(depth, 1),
                               59, 60, 3)
        raise _Shortfall(log_n, need, MAX_LOG_QP[modelled][log_n], 59, need)
    levels = config.depth + depth
    scale = config.first_bits - BOOTSTRAP_HEADROOM_BITS
    towers = levels + 1
    digit = config.first_bits + (math.ceil(towers / config.dnum) - 1) * scale
    p_bits = [SPECIAL_BITS] * math.ceil((digit + 1) / SPECIAL_BITS)
    params = Parameters(log_n, [config.first_bits] + [scale] * levels, p_bits, scale,
                        config.dnum, security)
    fresh, final, rotated = predict(params, depth, start_level=depth)
    if final < precision + MARGIN_BITS:
        raise ParameterError(
            f"precision_bits={precision:g} after {depth} levels past bootstrapping: the "
            f"{scale}-bit scale of the bootstrapping chain reaches "
            f"{final:.1f} bits at N=2^{log_n}, short by {precision + MARGIN_BITS - final:.1f}")
    return Suggestion(params, depth, precision, security, fresh, final, rotated, config)


def _int_arg(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not lo <= value <= hi:
        raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {value!r:.40}")
    return int(value)


def _start_log_n(slots, log_n, security) -> int:
    """The smallest ring degree to try: 2^10, or 2 * slots, or the given one."""
    lo = MIN_LOG_N
    if slots is not None:
        slots = _int_arg("slots", slots, 1, 1 << (MAX_LOG_N - 1))
        lo = max(lo, (2 * slots - 1).bit_length())
    if log_n is not None:
        log_n = _int_arg("log_n", log_n, MIN_LOG_N, MAX_LOG_N)
        if log_n < lo:
            raise ParameterError(f"log_n={log_n} gives {1 << (log_n - 1)} slots, fewer than "
                                 f"the slots={slots} asked for: needs log_n >= {lo}")
        return log_n
    return lo


def _impossible(short: _Shortfall, depth, precision, security, given: bool, bootstrap):
    """The SecurityError for the last ring degree tried."""
    what = (f"depth {depth} at {precision:g} bits" + (" with bootstrapping" if bootstrap
                                                       else f" (scale 2^{short.scale_bits})"))
    head = (f"{what} needs log QP >= {short.need:.0f} (log Q {short.log_q:.0f} plus special "
            f"primes) > {short.bound} at N=2^{short.log_n} ({security}-bit bound), over by "
            f"{short.need - short.bound:.0f} bits")
    if given and short.log_n < MAX_LOG_N:
        bigger = MAX_LOG_QP[security][short.log_n + 1]
        return SecurityError(f"{head}: use N=2^{short.log_n + 1} (bound {bigger}), or a "
                             f"smaller depth or precision")
    return SecurityError(f"{head}, and N=2^{MAX_LOG_N} is the largest ring supported: "
                         f"lower the depth or the precision" +
                         ("" if bootstrap else ", or bootstrap"))


def suggest(depth, precision_bits, security=128, log_n=None, slots=None,
            bootstrap: bool = False) -> Suggestion:
    """A secure parameter set for ``depth`` levels at ``precision_bits`` of max-error
    precision after them (see the module docstring for the method and its assumptions).

    ``security`` 128, 192, 256 or None (unchecked); ``log_n`` fixes N (else the smallest
    secure one); ``slots`` asks for at least that many slots; ``bootstrap`` adds the levels
    OpenFHE-style bootstrapping consumes, ``depth`` being the levels wanted after it.
    Raises ParameterError for malformed requests or an unreachable precision, SecurityError
    when no N up to 2^17 (or the given one) holds the chain under the bound."""
    depth = _int_arg("depth", depth, 0, 200)
    if isinstance(precision_bits, bool) or not isinstance(precision_bits, (int, float)) \
            or not 1 <= precision_bits <= 50:
        raise ParameterError(f"precision_bits must be a number in [1, 50], got "
                             f"{precision_bits!r:.40}")
    if security is not None and (isinstance(security, bool) or security not in MAX_LOG_QP):
        raise ParameterError(f"security={security!r} is not supported: use 128, 192, 256 "
                             f"or None")
    start = _start_log_n(slots, log_n, security)
    last = None
    for ln in ([start] if log_n is not None else range(start, MAX_LOG_N + 1)):
        try:
            if bootstrap:
                return _bootstrapped(ln, depth, float(precision_bits), security)
            return _plain(ln, depth, float(precision_bits), security)
        except _Shortfall as short:
            last = short
    raise _impossible(last, depth, precision_bits, security, log_n is not None, bootstrap)

"""Polynomials on encrypted slots: Chebyshev interpolants and their evaluation.

A :class:`Chebyshev` is p(x) = sum_j c_j T_j(y) on an interval [a, b], y = alpha*x + beta
the affine map onto [-1, 1]. Its cleartext twin ``p(x)`` evaluates the same sum on NumPy
values, and ``p.max_error`` reports how far a fitted p is from the function it
interpolates, so that approximation error and HE error can be told apart.

:func:`evaluate` computes p on a ciphertext by recursive Chebyshev division
p = q * T_K + r (K the largest power of two <= deg p; T_{K+m} = 2 T_K T_m - T_{K-m}) down
to degree-1 leaves c_0 + c_1 T_1. Only T_1 and the powers T_2, T_4, ..., T_K are computed
(T_2k = 2 T_k^2 - 1: one product, a free doubling and a constant), and every leaf's constant
multiplication is the one rescale of its level, so the depth is ceil(log2(deg + 1)) (the
bound Lattigo states; a power-basis Horner or a Paterson-Stockmeyer with baby steps larger
than T_1 needs one more). Scales are managed exactly: each sub-polynomial is evaluated to
the level and scale its parent needs (q to S * q_l / scale(T_K), so that q * T_K rescaled
lands on S), and the constant of a leaf is encoded at exactly that target by
``Evaluator.mul_to_scale``; sums therefore never need a scale correction.

The change of variable y = alpha*x + beta costs no level when T_1 = y can be had at a
scale close to the prime the first product removes: then every power keeps a scale close
to its prime (T_2k = T_k^2 / q). That holds when alpha is a positive integer (y = the
ciphertext times alpha by additions, same scale) or when the input arrives pre-scaled
(its scale alpha times that prime: y is the same ciphertext read at scale / alpha), each
up to a scale drift r with |log2 r| * 2^(depth - 1) <= 1 bit. Otherwise (an interval wider
than [-1, 1] at the nominal scale, a non-integer alpha, an input at an unusual scale) a
scale change left in T_1 would compound as r^k in T_k, so the map is one constant
multiplication rescaled to the next prime: one level (as OpenFHE spends). Fold the map
into the previous step to avoid it: a LinearTransform with weights alpha*W and bias
alpha*b + beta, or an encoder scale of alpha times the prime.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as npcheb

from ..ckks import CIPHERTEXT_TYPES, Ciphertext, Evaluator
from ..errors import LevelError, ParameterError

#: points of the grid on which ``Chebyshev.fit`` measures its fit error
ERROR_GRID = 4097
#: slack allowed on |y| <= 1 when the tracked bound proves the input lies in the interval
_BOUND_SLACK = 1e-9
#: largest scale drift of T_1 against its prime, in bits times 2^(depth - 1), for a free
#: change of variable (the drift of T_k is the k-th power of T_1's)
_DRIFT_BITS = 1.0


class Chebyshev:
    """p(x) = sum_j coeffs[j] * T_j(alpha*x + beta) on ``interval`` = (a, b).

    Build with :meth:`fit` (interpolation of a function at Chebyshev nodes) or
    :meth:`from_coefficients` (Chebyshev or power basis). ``p(x)`` is the cleartext twin,
    ``p.degree``, ``p.depth`` (levels :func:`evaluate` consumes on an input already in
    [-1, 1] coordinates, ceil(log2(degree + 1))), ``p.max_error`` (fit error against the
    function on a grid of the interval; 0.0 for given coefficients).
    """

    def __init__(self, coeffs, interval=(-1.0, 1.0), max_error: float = 0.0,
                 name: str = "polynomial"):
        c = _finite_vector("Chebyshev coefficients", coeffs)
        nz = np.flatnonzero(c)
        self.coeffs = c[: int(nz[-1]) + 1] if nz.size else c[:1]
        self.interval = _interval(interval)
        a, b = self.interval
        self.alpha = 2.0 / (b - a)
        self.beta = -(a + b) / (b - a)
        self.max_error = float(max_error)
        self.name = str(name)

    @classmethod
    def fit(cls, f, interval, degree: int, name: str | None = None) -> "Chebyshev":
        """The interpolant of ``f`` at the degree + 1 Chebyshev nodes of ``interval``.

        Raises ParameterError when f returns a non-finite value on the interval (naming
        the point) or the degree is not a positive integer."""
        degree = _degree(degree)
        a, b = _interval(interval)

        grid = np.linspace(a, b, ERROR_GRID)
        exact = _finite_values(f, grid, (a, b))
        nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))
        values = _finite_values(f, (nodes * (b - a) + (a + b)) / 2.0, (a, b))
        coeffs = _interpolation_coefficients(values)
        p = cls(coeffs, (a, b), name=name or getattr(f, "__name__", "f"))
        p.max_error = float(np.max(np.abs(p(grid) - exact)))
        return p

    @classmethod
    def from_coefficients(cls, coeffs, interval=(-1.0, 1.0), basis: str = "chebyshev"):
        """A polynomial given by its coefficients (lowest degree first) in the
        ``"chebyshev"`` basis of the interval or the ``"power"`` basis of x."""
        c = _finite_vector("coefficients", coeffs)
        a, b = _interval(interval)
        if basis == "chebyshev":
            return cls(c, (a, b))
        if basis != "power":
            raise ParameterError(f"basis must be 'chebyshev' or 'power', got {basis!r}")
        # x = (y * (b - a) + (a + b)) / 2: compose the power series with that map in y
        x_of_y = np.array([(a + b) / 2.0, (b - a) / 2.0])
        power_y = np.zeros(1)
        for coef in c[::-1]:
            power_y = np.polynomial.polynomial.polymul(power_y, x_of_y)
            power_y[0] += coef
        return cls(npcheb.poly2cheb(power_y), (a, b))

    @property
    def degree(self) -> int:
        """The degree (trailing zero coefficients dropped)."""
        return len(self.coeffs) - 1

    @property
    def depth(self) -> int:
        """Levels :func:`evaluate` consumes on an input in [-1, 1] coordinates:
        ceil(log2(degree + 1)) (0 for a constant)."""
        return polynomial_depth(self.degree)

    @property
    def integer_alpha(self) -> int | None:
        """alpha when it is a positive integer (the map needs additions only), else None."""
        m = round(self.alpha)
        return int(m) if m >= 1 and abs(self.alpha - m) <= 1e-12 * self.alpha else None

    @property
    def folds_change_of_variable(self) -> bool:
        """Whether the map onto [-1, 1] costs no level on an input at the nominal scale
        (alpha a positive integer: [-1, 1], [0, 1], [-1/2, 1/2], ...)."""
        return self.degree <= 1 or self.integer_alpha is not None

    def evaluation_depth(self) -> int:
        """Levels :func:`evaluate` consumes on an input whose scale is its next prime:
        ``depth``, plus one unless the map onto [-1, 1] folds (see the module notes; an
        input pre-scaled by alpha also costs ``depth`` only)."""
        if self.degree == 0:
            return 0
        return self.depth + (0 if self.folds_change_of_variable else 1)

    def in_unit_coordinates(self) -> "Chebyshev":
        """The same series on [-1, 1], for an input already mapped by y = alpha*x + beta.

        Fold the map into the step that produces x (a LinearTransform with weights
        alpha*W and bias alpha*b + beta) and the evaluation costs ``depth`` levels even for
        an interval wider than [-1, 1]."""
        return Chebyshev(self.coeffs, (-1.0, 1.0), self.max_error, self.name)

    def __call__(self, x):
        """The cleartext twin: p at real or complex x (NumPy)."""
        y = self.alpha * np.asarray(x) + self.beta
        return npcheb.chebval(y, self.coeffs)

    def __repr__(self):
        return (f"Chebyshev({self.name}, degree={self.degree}, interval={self.interval}, "
                f"max_error={self.max_error:.3g})")


def _interpolation_coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients of the interpolant through ``values`` at the first-kind nodes
    cos(pi (k + 1/2) / n): c_j = (2/n) sum_k f_k cos(pi j (2k + 1) / (2n)), c_0 halved. The
    cosines come from one table indexed by j (2k + 1) mod 4n, each correct to an ulp (a
    product j * (2k + 1) * pi / (2n) rounded first would carry an error growing with j)."""
    n = len(values)
    index = np.outer(np.arange(n), 2 * np.arange(n) + 1) % (4 * n)
    table = np.cos(np.pi * np.arange(4 * n) / (2 * n))
    coeffs = (table[index] @ values) * (2.0 / n)
    coeffs[0] /= 2.0
    return coeffs


def polynomial_depth(degree: int) -> int:
    """ceil(log2(degree + 1)): levels of a degree-``degree`` polynomial (0 for constants)."""
    return int(degree).bit_length() if degree > 0 else 0


def evaluate(ev: Evaluator, ct: Ciphertext, p: Chebyshev, *, scale: float | None = None,
             assume_in_interval: bool = False) -> Ciphertext:
    """p(ct) slot-wise, in ``p.evaluation_depth()`` levels, at ``scale`` exactly.

    The default ``scale`` is the input's, or the context's default scale when the input's
    is smaller: an input pre-scaled by alpha < 1 (the change of variable folded into the
    client's encoding) would otherwise hand its reduced scale to the result, whose last
    rescale error would then cost log2(1/alpha) bits (3 bits on [-8, 8]).

    The input must lie in ``p.interval`` (outside it, or off the real line, a Chebyshev
    series diverges and the result would be garbage): proved when the ciphertext's slots
    are known to be real (``ct.real``) and its tracked value bound lies inside [a, b], or
    promised by the caller with ``assume_in_interval=True``. Raises LevelError before any
    work when the ciphertext has fewer levels than the evaluation needs ("needs 6 levels,
    ciphertext has 4"), ParameterError when the interval is not proved and not assumed.
    """
    if not isinstance(p, Chebyshev):
        raise ParameterError(f"evaluate needs a Chebyshev polynomial, got {type(p).__name__}")
    if not isinstance(ct, CIPHERTEXT_TYPES):
        raise ParameterError(f"evaluate needs a Ciphertext, got {type(ct).__name__}")
    free = _free_map(ev, ct, p)
    need = p.depth + (0 if free or p.degree == 0 else 1)
    if ct.level < need:
        raise LevelError(f"{p.name} of degree {p.degree} needs {need} levels, ciphertext "
                         f"has {ct.level}")
    _check_interval(ct, p, assume_in_interval)
    target = max(float(ct.scale), float(ev.context.default_scale)) if scale is None \
        else float(scale)
    if p.degree == 0:
        zero = ev.mul_to_scale(ct, 0.0, target) if ct.level else ct
        return ev.add(zero, float(p.coeffs[0]))
    t1 = _change_of_variable(ev, ct, p, free)
    baby = 1 << max(1, p.depth // 2)
    return _eval(ev, p.coeffs, _Basis(ev, t1), t1.level - p.depth, target, baby)


def _check_interval(ct, p: Chebyshev, assume: bool) -> None:
    a, b = p.interval
    bound = ct.value_bound
    if assume or (ct.real and bound is not None and -bound >= a - _BOUND_SLACK * (b - a)
                  and bound <= b + _BOUND_SLACK * (b - a)):
        return
    if not ct.real:
        raise ParameterError(
            f"{p.name} is fitted on the real interval [{a:g}, {b:g}], but the ciphertext's "
            f"slots are not known to be real (complex values, or loaded from bytes): a "
            f"Chebyshev series diverges off the real line. Pass assume_in_interval=True if "
            f"you know the values are real and lie in the interval")
    raise ParameterError(
        f"{p.name} is fitted on [{a:g}, {b:g}], but the ciphertext's values are only known "
        f"to satisfy |x| <= {bound!r}: outside the interval the series diverges. Pass "
        f"assume_in_interval=True if you know the values lie in it")


def _free_map(ev: Evaluator, ct: Ciphertext, p: Chebyshev) -> str | None:
    """How T_1 can be had without a level: "times" (alpha an integer, the scale kept),
    "read" (the ciphertext read at scale / alpha), or None (one level is needed)."""
    if p.degree <= 1:
        return "read"
    if ct.level == 0:
        return None
    q = float(ev.context.q_primes[ct.level])
    limit = _DRIFT_BITS / (1 << (p.depth - 1))
    options = [("read", ct.scale / p.alpha)]
    if p.integer_alpha is not None:
        options.append(("times", ct.scale))
    drift, how = min((abs(math.log2(s1 / q)), how) for how, s1 in options)
    return how if drift <= limit else None


def _change_of_variable(ev: Evaluator, ct: Ciphertext, p: Chebyshev, free) -> Ciphertext:
    """T_1 = alpha*x + beta, bounded by 1: free as :func:`_free_map` says, else one level
    (a constant multiplication rescaled to the scale of the next prime)."""
    if free == "times":
        y = _times(ev, ct, p.integer_alpha)
    elif free == "read":
        y = ev.mul_by_scale(ct, p.alpha)
    else:
        q = ev.context.q_primes[ct.level - 1]
        y = ev.mul_to_scale(ct, p.alpha, float(q))
    if p.beta:
        y = ev.add(y, p.beta)
    return ev.assume_bound(y, 1.0)


def _times(ev: Evaluator, ct: Ciphertext, m: int) -> Ciphertext:
    """m * ct for a positive integer m by doublings and additions (no level)."""
    out, power = None, ct
    while m:
        if m & 1:
            out = power if out is None else ev.add(out, power)
        m >>= 1
        if m:
            power = ev.add(power, power)
    return out


class _Basis:
    """T_1 and the T_k it derives on demand, memoised: powers of two by
    T_2k = 2 T_k^2 - 1, others by T_{a+b} = 2 T_a T_b - T_{a-b} (a the largest power of
    two below), the subtracted term brought to the product's scale exactly. Every T_k is
    bounded by 1 and has depth ceil(log2 k) below T_1."""

    def __init__(self, ev: Evaluator, t1: Ciphertext):
        self.ev = ev
        self.top = t1.level
        self.t = {1: t1}

    def depth(self, k: int) -> int:
        """Levels T_k sits below T_1."""
        return polynomial_depth(k)

    def __getitem__(self, k: int) -> Ciphertext:
        if k not in self.t:
            ev = self.ev
            a = 1 << (k.bit_length() - 1)
            if a == k:
                sq = ev.mul(self[k // 2], self[k // 2])
                tk = ev.add(ev.add(sq, sq), -1.0)
            else:
                left, right = self[a], self[k - a]
                level = min(left.level, right.level)
                prod = ev.mul(ev.drop_level(left, level), ev.drop_level(right, level))
                low = self[2 * a - k]
                low = ev.mul_to_scale(low, 1.0, prod.scale) if low.level > prod.level \
                    else low
                tk = ev.sub(ev.add(prod, prod), ev.drop_level(low, prod.level))
            self.t[k] = ev.assume_bound(tk, 1.0)
        return self.t[k]


def _split(coeffs: np.ndarray, k: int):
    """Chebyshev division p = q * T_k + r for deg p >= k (k a power of two, deg p < 2k)."""
    d = len(coeffs) - 1
    q = 2.0 * coeffs[k:].copy()
    q[0] = coeffs[k]
    r = coeffs[:k].copy()
    for m in range(1, d - k + 1):
        r[k - m] -= coeffs[k + m]
    return q, r


def _leaf(ev: Evaluator, coeffs: np.ndarray, basis: _Basis, level: int,
          scale: float) -> Ciphertext:
    """sum_j coeffs[j] T_j for a low degree: one integer constant per term, every term
    brought to ``scale`` * q_(level+1) at ``level`` + 1, then one rescale."""
    if len(coeffs) < 2:
        coeffs = np.append(coeffs, 0.0)
    js = [j for j in range(1, len(coeffs)) if j == 1 or coeffs[j] != 0.0]
    out = ev.lincomb_to_scale([ev.drop_level(basis[j], level + 1) for j in js],
                              [float(coeffs[j]) for j in js], scale)
    return ev.add(out, float(coeffs[0])) if coeffs[0] else out


def _eval(ev: Evaluator, coeffs: np.ndarray, basis: _Basis, level: int, scale: float,
          baby: int) -> Ciphertext:
    """sum_j coeffs[j] T_j at ``level`` and exactly ``scale``: a leaf when every T_j it needs
    sits at least one level above ``level`` and the degree is below ``baby``, else the
    Chebyshev division by the largest power of two below the degree."""
    d = len(coeffs) - 1
    while d > 0 and coeffs[d] == 0.0:
        d -= 1
    room = basis.top - level - 1
    if d <= 1 or (d < baby and basis.depth(d) <= room):
        return _leaf(ev, coeffs[: max(d, 1) + 1], basis, level, scale)
    k = 1 << (d.bit_length() - 1)
    q, r = _split(coeffs[: d + 1], k)
    tk = ev.drop_level(basis[k], level + 1)
    prime = ev.context.q_primes[level + 1]
    q_ct = _eval(ev, q, basis, level + 1, scale * prime / tk.scale, baby)
    prod = ev.mul(q_ct, tk)
    r_ct = _eval(ev, r, basis, level, scale, baby)
    return ev.add(prod, r_ct)


def _finite_vector(what: str, values) -> np.ndarray:
    try:
        c = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be real numbers, got {values!r:.60}") from None
    if c.size == 0:
        raise ParameterError(f"{what} must hold at least one value, got none")
    if not np.all(np.isfinite(c)):
        raise ParameterError(f"{what} must be finite, got {c[~np.isfinite(c)][0]} at index "
                             f"{int(np.flatnonzero(~np.isfinite(c))[0])}")
    return c


def _interval(interval) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ParameterError(f"interval must be a pair (a, b), got {interval!r:.60}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ParameterError(f"interval must be finite with a < b, got ({a}, {b})")
    return a, b


def _degree(degree) -> int:
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ParameterError(f"degree must be a positive integer, got {degree!r}")
    return int(degree)


def _finite_values(f, grid: np.ndarray, interval) -> np.ndarray:
    with np.errstate(all="ignore"):
        values = np.asarray(f(grid), dtype=np.float64)
    if values.shape != grid.shape:
        raise ParameterError(f"the function must map an array of shape {grid.shape} to one "
                             f"of the same shape, got {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ParameterError(f"the function is not finite on the interval {interval}: "
                             f"f({float(grid[bad][0])!r}) = {float(values[bad][0])!r}")
    return values

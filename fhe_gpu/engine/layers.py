"""The layers of an engine :class:`~fhe_gpu.engine.model.Model`, each with a cleartext twin.

* :class:`Linear` (W, b): y = W x + b, one level (a
  :class:`~fhe_gpu.circuits.LinearTransform`);
* :class:`Activation` (a named function of :data:`~fhe_gpu.circuits.ACTIVATIONS` fitted on
  an interval at a degree, or a given :class:`~fhe_gpu.circuits.Chebyshev`):
  ceil(log2(d + 1)) levels right after a Linear (its change of variable is folded into the
  Linear's weights), one more elsewhere (the change of variable);
* :class:`Square`: x*x, one level; :class:`Scale` (c): c*x, no level (the ciphertext is read
  at scale / |c|); :class:`Bias` (b, a scalar or a vector): x + b, no level.

Layers are immutable. Each stores its content as plain NumPy arrays (float64, int64 and
strings: ``arrays()`` / ``from_arrays``) for the model file and the model's fingerprint.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..circuits import Chebyshev, activation
from ..errors import ParameterError


def _real_array(what: str, value, ndims: tuple) -> np.ndarray:
    """``value`` as a read-only finite float64 array with ndim in ``ndims``, or
    ParameterError naming what was got."""
    try:
        a = np.array(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be a real array, got {type(value).__name__} "
                             f"({exc})") from None
    if a.dtype.kind not in "biuf" or a.ndim not in ndims or 0 in a.shape:
        dims = " or ".join(map(str, ndims))
        raise ParameterError(f"{what} must be a non-empty real array of {dims} dimension(s), "
                             f"got shape {a.shape} dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        at = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ParameterError(f"{what} must be finite, got {a[at]} at index {at}")
    a.setflags(write=False)
    return a


def check_vectors(x, dim: int | None) -> np.ndarray:
    """x as a finite float64 (count, dim) array (a (dim,) vector counts as one)."""
    a = _real_array("x", x, (1, 2))
    a = np.atleast_2d(a)
    if dim is not None and a.shape[1] != dim:
        raise ParameterError(f"x must have shape ({dim},) or (count, {dim}), got "
                             f"{np.shape(x)}")
    return a


class Layer:
    """Base of the model layers: ``kind`` (its name in a model file), ``depth`` (levels it
    consumes when evaluated on its own), ``output_dim(d)``, ``forward_plain(x)``,
    ``arrays()`` and ``from_arrays``."""

    kind = "layer"
    depth = 0

    def output_dim(self, d: int | None) -> int | None:
        """The vector length after this layer for an input of length ``d`` (None: not yet
        fixed); ParameterError when ``d`` does not fit."""
        return d

    def input_dim(self) -> int | None:
        """The input length this layer fixes (None when it takes any)."""
        return None

    def forward_plain(self, x: np.ndarray) -> np.ndarray:
        """The cleartext twin on a (count, d) array."""
        raise NotImplementedError

    def arrays(self) -> dict:
        """The layer's content as plain arrays (names relative to the layer)."""
        return {}

    @classmethod
    def from_arrays(cls, read) -> "Layer":
        """The layer rebuilt by ``read(name, kind, ndims)`` (kind "float" or "str")."""
        return cls()

    def __repr__(self):
        return f"{type(self).__name__}()"


class Linear(Layer):
    """y = W x + b with a plaintext W of shape (d_out, d_in) (any sizes that fit one lane
    of the model's slot layout) and an optional bias b of shape (d_out,). One level."""

    kind = "linear"
    depth = 1

    def __init__(self, W, b=None):
        self.W = _real_array("W", W, (2,))
        self.d_out, self.d_in = self.W.shape
        self.b = None if b is None else _real_array("b", b, (1,))
        if self.b is not None and self.b.shape != (self.d_out,):
            raise ParameterError(f"the bias of a Linear with W of shape {self.W.shape} must "
                                 f"have shape ({self.d_out},), got {self.b.shape}")

    def input_dim(self) -> int:
        return self.d_in

    def output_dim(self, d):
        if d is not None and d != self.d_in:
            raise ParameterError(f"Linear {self.d_out}x{self.d_in} takes vectors of length "
                                 f"{self.d_in}, but its input has length {d}")
        return self.d_out

    def forward_plain(self, x):
        return x @ self.W.T + (0.0 if self.b is None else self.b)

    def folded(self, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """(alpha*W, alpha*b + beta): the weights with an activation's change of variable
        y = alpha*x + beta folded in."""
        b = np.zeros(self.d_out) if self.b is None else self.b
        return alpha * self.W, alpha * b + beta

    def arrays(self):
        return {"W": self.W} if self.b is None else {"W": self.W, "b": self.b}

    @classmethod
    def from_arrays(cls, read):
        return cls(read("W", "float", (2,)), read("b", "float", (1,), optional=True))

    def __repr__(self):
        return f"Linear({self.d_out}x{self.d_in}{'' if self.b is None else ', bias'})"


class Activation(Layer):
    """A function applied slot-wise as a Chebyshev interpolant.

    ``Activation("gelu", interval=(-8, 8), degree=31)`` fits a function of
    :data:`fhe_gpu.circuits.ACTIVATIONS` (interval and degree default per function);
    ``Activation(p)`` takes a :class:`~fhe_gpu.circuits.Chebyshev` as it is. The inputs it
    sees must lie in the interval (outside it the series diverges): that is the model
    author's promise. ``polynomial``, ``name``, ``interval``, ``degree``, ``max_error``
    (the fit error against the function). Depth: ``polynomial.depth`` right after a Linear
    (the change of variable is folded into it), else one more.
    """

    kind = "activation"

    def __init__(self, function, interval=None, degree=None):
        if isinstance(function, Chebyshev):
            if interval is not None or degree is not None:
                raise ParameterError(f"an Activation given a Chebyshev takes its interval "
                                     f"and degree from it, got interval={interval!r:.40} "
                                     f"degree={degree!r:.20}")
            p = function
        elif isinstance(function, str):
            p = activation(function, interval=interval, degree=degree)
        else:
            raise ParameterError(f"Activation needs a function name or a Chebyshev, got "
                                 f"{type(function).__name__}")
        if p.degree < 1:
            raise ParameterError(f"Activation {p.name!r} is a constant (degree 0): needs "
                                 f"degree >= 1")
        self.polynomial = p

    @property
    def name(self) -> str:
        """The function's name (as the Chebyshev carries it)."""
        return self.polynomial.name

    @property
    def interval(self) -> tuple[float, float]:
        """The interval (a, b) the inputs must lie in."""
        return self.polynomial.interval

    @property
    def degree(self) -> int:
        """The polynomial's degree."""
        return self.polynomial.degree

    @property
    def max_error(self) -> float:
        """The fit error against the function on its interval (0.0 when unknown)."""
        return self.polynomial.max_error

    @property
    def depth(self) -> int:
        """Levels when not folded into a Linear: ``polynomial.depth`` + 1 (the change of
        variable, one constant multiplication rescaled to the next prime)."""
        return self.polynomial.depth + 1

    def forward_plain(self, x):
        return np.real(self.polynomial(x))

    def arrays(self):
        p = self.polynomial
        return {"name": np.array(p.name), "interval": np.array(p.interval, dtype=np.float64),
                "coeffs": np.array(p.coeffs, dtype=np.float64),
                "max_error": np.array(p.max_error, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, read):
        interval = read("interval", "float", (1,))
        if interval.shape != (2,):
            raise ParameterError(f"an activation interval must have shape (2,), got "
                                 f"{interval.shape}")
        p = Chebyshev(read("coeffs", "float", (1,)), tuple(interval),
                      float(read("max_error", "float", (0,))), str(read("name", "str", (0,))))
        return cls(p)

    def __repr__(self):
        a, b = self.interval
        return f"Activation({self.name!r}, interval=({a:g}, {b:g}), degree={self.degree})"


class Square(Layer):
    """x*x slot-wise (a ciphertext product, relinearized and rescaled): one level."""

    kind = "square"
    depth = 1

    def forward_plain(self, x):
        return x * x


class Scale(Layer):
    """c*x for a real constant c != 0: no level (the ciphertext is read at scale / |c|,
    negated when c < 0), so the error grows with |c| as the values do."""

    kind = "scale"

    def __init__(self, c):
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not math.isfinite(c) \
                or c == 0:
            raise ParameterError(f"Scale needs a finite nonzero real constant, got {c!r:.40}")
        self.c = float(c)

    def forward_plain(self, x):
        return self.c * x

    def arrays(self):
        return {"c": np.array(self.c, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, read):
        return cls(float(read("c", "float", (0,))))

    def __repr__(self):
        return f"Scale({self.c!r})"


class Bias(Layer):
    """x + b for a real scalar b (every element) or a vector b of the input's length:
    no level."""

    kind = "bias"

    def __init__(self, b):
        self.b = _real_array("b", b, (0, 1))

    def input_dim(self) -> int | None:
        return self.b.shape[0] if self.b.ndim else None

    def output_dim(self, d):
        if self.b.ndim and d is not None and d != self.b.shape[0]:
            raise ParameterError(f"a Bias of length {self.b.shape[0]} cannot follow an "
                                 f"output of length {d}")
        return self.b.shape[0] if self.b.ndim else d

    def forward_plain(self, x):
        return x + self.b

    def arrays(self):
        return {"b": self.b}

    @classmethod
    def from_arrays(cls, read):
        return cls(read("b", "float", (0, 1)))

    def __repr__(self):
        return f"Bias({float(self.b)!r})" if not self.b.ndim else f"Bias(length {self.b.size})"


#: layer kinds by their name in a model file
LAYERS = {cls.kind: cls for cls in (Linear, Activation, Square, Scale, Bias)}

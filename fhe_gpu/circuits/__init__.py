"""fhe_gpu.circuits: algorithms written with ckks.Evaluator calls only, each with a
cleartext twin and a stated depth (DESIGN §8).

* :class:`LinearTransform`: plaintext matrices of any shape times encrypted vectors
  (baby-step giant-step over the diagonals, hoisted baby steps), depth 1;
* :func:`inner_sum`, :func:`dot`, :func:`replicate`: sums over blocks of slots;
* :class:`Chebyshev` and :func:`evaluate`: polynomials in ceil(log2(d + 1)) levels;
  :func:`activation` (sigmoid, tanh, GELU, SiLU, exp) and :func:`inv_sqrt`;
* :class:`Bootstrapper` with :class:`BootstrapParameters`: CKKS bootstrapping.
"""
from .bootparams import BootstrapParameters
from .bootstrap import Bootstrapper
from .functions import ACTIVATIONS, activation, inv_sqrt, inv_sqrt_depth, inv_sqrt_plain
from .linear import LinearTransform
from .polynomial import Chebyshev, evaluate, polynomial_depth
from .sums import (dot, dot_rotations, inner_sum, inner_sum_depth, inner_sum_plain,
                   inner_sum_rotations, replicate, replicate_plain, replicate_rotations)

__all__ = ["ACTIVATIONS", "BootstrapParameters", "Bootstrapper", "Chebyshev", "LinearTransform", "activation", "dot",
           "dot_rotations", "evaluate", "inner_sum", "inner_sum_depth", "inner_sum_plain",
           "inner_sum_rotations", "inv_sqrt", "inv_sqrt_depth", "inv_sqrt_plain",
           "polynomial_depth", "replicate", "replicate_plain", "replicate_rotations"]

"""CKKS: parameters, encoding, evaluation, precision statistics."""
from ..rlwe.objects import Ciphertext, Plaintext
from .context import Context
from .encoder import Encoder
from .evaluator import Evaluator
from .parameters import Parameters
from .precision import precision_bits, precision_stats

__all__ = ["Ciphertext", "Context", "Encoder", "Evaluator", "Parameters", "Plaintext",
           "precision_bits", "precision_stats"]

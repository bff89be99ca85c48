"""CKKS: parameters, encoding, evaluation, precision statistics, the Simulator."""
from ..rlwe.objects import Ciphertext, Plaintext
from .context import Context
from .encoder import Encoder
from .evaluator import Evaluator
from .parameters import Parameters
from .precision import precision_bits, precision_stats
from .simobjects import SimCiphertext, SimPlaintext
from .simulator import Simulator

#: what the circuits accept as a ciphertext and as an evaluator (a Simulator runs them too)
CIPHERTEXT_TYPES = (Ciphertext, SimCiphertext)
EVALUATOR_TYPES = (Evaluator, Simulator)

__all__ = ["CIPHERTEXT_TYPES", "Ciphertext", "Context", "EVALUATOR_TYPES", "Encoder",
           "Evaluator", "Parameters", "Plaintext", "SimCiphertext", "SimPlaintext", "Simulator",
           "precision_bits", "precision_stats"]

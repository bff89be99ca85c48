"""fhe_gpu: GPU-accelerated RNS-CKKS homomorphic encryption with a fast CPU fallback.

    import fhe_gpu as fg
    params = fg.Parameters.preset("N14")
    ctx = fg.Context(params)
    kg = fg.KeyGenerator(ctx)
    ...
"""
from .ckks import (Context, Encoder, Evaluator, Parameters, Simulator, precision_bits,
                   precision_stats)
from .errors import (BackendUnavailableError, BatchIndexError, ContextMismatchError,
                     DeadlineExceededError, EngineClosedError, EngineOverloadedError, FHEError,
                     KeyMismatchError, KeyMissingError, LevelError, ModulusOverflowError,
                     ParameterError, ResourceError, ScaleMismatchError, SecurityError,
                     SerializationError)
from .rlwe import (Ciphertext, Decryptor, Encryptor, EvaluationKeys, KeyGenerator, Plaintext,
                   PublicKey, SecretKey)
from .ring.threads import get_num_threads, set_num_threads
from . import serialize  # noqa: F401  (registers the wire format: to_bytes/from_bytes)

__version__ = "0.1.0"

__all__ = [
    "Parameters", "Context", "KeyGenerator", "Encoder", "Encryptor", "Decryptor", "Evaluator",
    "Plaintext", "Ciphertext", "SecretKey", "PublicKey", "EvaluationKeys", "precision_bits",
    "precision_stats", "Simulator",
    "FHEError", "ParameterError", "SecurityError", "ContextMismatchError", "LevelError",
    "ScaleMismatchError", "KeyMissingError", "SerializationError", "BackendUnavailableError",
    "KeyMismatchError", "ModulusOverflowError", "BatchIndexError", "ResourceError",
    "EngineOverloadedError", "DeadlineExceededError", "EngineClosedError", "set_num_threads",
    "get_num_threads",
]

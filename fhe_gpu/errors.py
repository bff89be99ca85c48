"""Typed errors of fhe_gpu.

Every user-facing failure raises a subclass of :class:`FHEError`. Messages name
both the value that was received and what was needed.
"""


class FHEError(Exception):
    """Base class of every error fhe_gpu raises on user input."""


class ParameterError(FHEError, ValueError):
    """Parameters that cannot form a valid CKKS scheme (bad sizes, too few primes...)."""


class SecurityError(ParameterError):
    """Parameters whose log2(QP) exceeds the HomomorphicEncryption.org bound for N."""


class ContextMismatchError(FHEError, ValueError):
    """An object made under other parameters (different fingerprint) or another context."""


class LevelError(FHEError, ValueError):
    """An operation needs more levels than the object has (e.g. rescale at level 0)."""


class ScaleMismatchError(FHEError, ValueError):
    """Operands whose scales differ by more than the evaluator tolerates."""


class KeyMissingError(FHEError, KeyError):
    """An evaluation key (relinearization or Galois) that was not generated."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class SerializationError(FHEError, ValueError):
    """Malformed, truncated, oversized or otherwise invalid bytes."""


class BackendUnavailableError(FHEError, RuntimeError):
    """A requested backend (e.g. 'cuda') cannot run on this machine."""


class KeyMismatchError(FHEError, ValueError):
    """Objects of two different key sets (their key ids differ): e.g. tenant A's
    ciphertext with tenant B's evaluation keys."""


class ModulusOverflowError(FHEError, ValueError):
    """A value or a scale the modulus at the object's level cannot hold (|value| * scale
    must stay below Q_level / 4; see :func:`fhe_gpu.rlwe.objects.check_fits`)."""


class BatchIndexError(FHEError, IndexError):
    """A batch index outside the object's batch (``ct[5]`` on a batch of 2)."""


class ResourceError(FHEError, MemoryError):
    """A request whose estimated memory exceeds what this machine (or a stated limit)
    provides; raised before anything is allocated."""


class EngineOverloadedError(FHEError, RuntimeError):
    """An Engine queue is full: the request was refused at once (retry later)."""


class DeadlineExceededError(FHEError, TimeoutError):
    """A request whose deadline passed before the Engine could evaluate it."""


class EngineClosedError(FHEError, RuntimeError):
    """A request submitted to an Engine that is closing or closed."""


__all__ = [
    "FHEError", "ParameterError", "SecurityError", "ContextMismatchError", "LevelError",
    "ScaleMismatchError", "KeyMissingError", "SerializationError", "BackendUnavailableError",
    "KeyMismatchError", "ModulusOverflowError", "BatchIndexError", "ResourceError",
    "EngineOverloadedError", "DeadlineExceededError", "EngineClosedError",
]

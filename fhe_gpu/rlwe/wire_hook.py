"""Late binding of the wire format to the classes of the lower layers.

Plaintext, Ciphertext and the keys (rlwe) and Parameters (ckks) offer ``to_bytes`` /
``from_bytes``, but the wire format lives in :mod:`fhe_gpu.serialize`, a higher layer that
rlwe and ckks must not import. Their methods therefore call :func:`codec`, which returns
whatever :mod:`fhe_gpu.serialize` registered when it was imported (``import fhe_gpu``
imports it). A codec is any object with these four methods:

* ``dump(obj) -> bytes`` for Plaintext, Ciphertext, PublicKey, EvaluationKeys (and their
  subclass BootstrapKeys, a kind of its own), SecretKey;
* ``load(cls, data, ctx, max_bytes) -> obj`` the inverse, checking ``data`` holds a ``cls``;
* ``dump_parameters(params) -> bytes``;
* ``load_parameters(cls, data, max_bytes) -> params`` building ``cls(...)`` from the bytes.
"""
from __future__ import annotations

from ..errors import SerializationError

_CODEC = None


def register(codec) -> None:
    """Install ``codec`` as the wire format used by every to_bytes / from_bytes."""
    global _CODEC
    _CODEC = codec


def codec():
    """The registered wire codec, or SerializationError when none is loaded."""
    if _CODEC is None:
        raise SerializationError("wire format not loaded: import fhe_gpu.serialize "
                                 "(importing fhe_gpu does) before calling to_bytes/from_bytes")
    return _CODEC


class WireMethods:
    """Mixin giving a class ``to_bytes`` / ``from_bytes`` through the registered codec."""

    def to_bytes(self) -> bytes:
        """The wire encoding of this object (format: see fhe_gpu.serialize)."""
        return codec().dump(self)

    @classmethod
    def from_bytes(cls, data, ctx, max_bytes=None):
        """An object decoded from ``data`` and checked against the context ``ctx``
        (fingerprint, sizes, every coefficient below its modulus). ``max_bytes`` bounds
        len(data) and the memory decoding may allocate (default 2 GiB). Raises only
        SerializationError or ContextMismatchError."""
        return codec().load(cls, data, ctx, max_bytes)

"""fhe_gpu.engine: the proxy-facing layer (DESIGN §9), framework-free.

* :class:`Model`: an ordered list of layers (:class:`Linear`, :class:`Activation`,
  :class:`Square`, :class:`Scale`, :class:`Bias`) with its depth, its cleartext twin
  (``forward_plain``), a content fingerprint and a versioned ``.npz`` file format;
  ``model.compile(ctx)`` gives the :class:`Plan` that evaluates it on batched ciphertexts
  with evaluation keys only (:mod:`fhe_gpu.engine.plan` documents the slot layout);
* :class:`Client`: a tenant's side: its keys for a model (only the rotations the model
  needs), inputs encrypted in the model's layout, outputs decrypted to arrays.

The homomorphic algorithms live in :mod:`fhe_gpu.circuits` (LinearTransform, Chebyshev
polynomials, sums).
"""
from .client import Client
from .engine import Engine
from .keycache import DirectoryKeyStore, MemoryKeyStore
from .layers import Activation, Bias, Layer, Linear, Scale, Square
from .model import Model
from .plan import Plan

__all__ = ["Activation", "Bias", "Client", "DirectoryKeyStore", "Engine", "Layer", "Linear",
           "MemoryKeyStore", "Model", "Plan", "Scale", "Square"]

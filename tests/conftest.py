"""Shared fixtures: small parameter sets and a keyed 'world' per backend."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.ring import available_backends, get_backend


def cuda_backend():
    """The CUDA backend: on the GPU when there is one, else on the emulator, else None."""
    if "cuda" in available_backends():
        return get_backend("cuda")
    try:
        from fhe_gpu.ring.cuda import CudaBackend
        return CudaBackend(emulate=True)
    except (ImportError, fg.BackendUnavailableError):
        return None


_CUDA = cuda_backend()
BACKENDS = ["reference", "cpu"] + (["cuda"] if _CUDA is not None else [])


def backend_for(name):
    """The backend argument for Context: the CUDA instance (GPU or emulator) for "cuda"."""
    return _CUDA if name == "cuda" else name


@dataclass
class World:
    params: fg.Parameters
    ctx: fg.Context
    kg: fg.KeyGenerator
    sk: fg.SecretKey
    pk: fg.PublicKey
    evk: fg.EvaluationKeys
    encoder: fg.Encoder
    encryptor: fg.Encryptor
    decryptor: fg.Decryptor
    ev: fg.Evaluator
    rng: np.random.Generator

    def encrypt(self, values, level=None, scale=None):
        return self.encryptor.encrypt(self.encoder.encode(values, level=level, scale=scale))

    def decrypt(self, ct):
        return self.encoder.decode(self.decryptor.decrypt(ct))

    def uniform(self, *shape):
        return self.rng.uniform(-1, 1, shape or (self.params.slots,))


ROTATIONS = [1, 2, 3, -1, -3]


def make_world(params, backend, seed=b"\x01" * 32):
    ctx = fg.Context(params, backend=backend_for(backend))
    kg = fg.KeyGenerator(ctx, seed=seed)
    pk = kg.public_key()
    evk = kg.evaluation_keys(rotations=ROTATIONS, conjugation=True)
    return World(params, ctx, kg, kg.secret_key, pk, evk, fg.Encoder(ctx),
                 fg.Encryptor(ctx, pk), fg.Decryptor(ctx, kg.secret_key), fg.Evaluator(ctx, evk),
                 np.random.default_rng(7))


def small_params(backend):
    """N=2^5 for the (slow) reference backend, 2^10 otherwise; insecure on purpose."""
    log_n = 5 if backend == "reference" else 10
    return fg.Parameters(log_n=log_n, q_bits=[50, 30, 30, 30], p_bits=[60], scale_bits=30,
                         security=None)


_WORLDS: dict = {}


@pytest.fixture(params=BACKENDS)
def world(request) -> World:
    if request.param not in _WORLDS:
        _WORLDS[request.param] = make_world(small_params(request.param), request.param)
    w = _WORLDS[request.param]
    w.rng = np.random.default_rng(7)
    return w

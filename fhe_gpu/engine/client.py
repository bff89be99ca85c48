"""A tenant's side of an Engine: :class:`Client` holds the secret key and the model's layout.

    client = engine.Client(params, model)
    eng.register_tenant("alice", client.evaluation_key_bytes())   # public material only
    out = eng.submit("alice", "clf", client.encrypt(x)).result()
    y = client.decrypt(out)                                        # (count, output_dim)

One request is one ciphertext of batch 1 holding up to ``plan.vectors`` input vectors in
the model's slot layout (:mod:`fhe_gpu.engine.plan`), at the plan's input level, encrypted
under the secret key (a seeded symmetric ciphertext: half the bytes of a public-key one).
More vectors need more requests.
"""
from __future__ import annotations

import threading

import numpy as np

from ..ckks import Ciphertext, Context, Encoder, Parameters
from ..errors import ParameterError
from ..rlwe import Decryptor, EvaluationKeys, Encryptor, KeyGenerator
from .model import Model


class Client:
    """Keys and layout of one tenant for one model.

    Parameters
    ----------
    params : the Engine's Parameters.
    model : the Model the Engine serves.
    seed : bytes making key generation reproducible, for tests only (None: OS entropy).
    backend : the ring backend of the client's Context ("auto", "cpu", "cuda").

    ``params``, ``model``, ``context``, ``plan`` (the model compiled for the client's
    context: its layout, levels and rotations), ``key_id`` (the key set's public id).
    Raises LevelError when the model needs more levels than the parameters have.
    """

    def __init__(self, params: Parameters, model: Model, seed: bytes | None = None,
                 backend="auto"):
        if not isinstance(params, Parameters):
            raise ParameterError(f"Client needs Parameters, got {type(params).__name__}")
        if not isinstance(model, Model):
            raise ParameterError(f"Client needs an engine Model, got {type(model).__name__}")
        self.params, self.model = params, model
        self.context = Context(params, backend=backend)
        self.plan = model.compile(self.context)
        self._keygen = KeyGenerator(self.context, seed=seed)
        self.key_id = self._keygen.key_id
        secret = self._keygen.secret_key
        self._encoder = Encoder(self.context)
        self._encryptor = Encryptor(self.context, secret)
        self._decryptor = Decryptor(self.context, secret)
        self._evk: EvaluationKeys | None = None
        self._evk_bytes: bytes | None = None
        self._lock = threading.Lock()

    def evaluation_keys(self) -> EvaluationKeys:
        """The relinearization key and the Galois keys of exactly the model's rotations
        (``plan.rotations``); generated on first use, then kept."""
        with self._lock:
            if self._evk is None:
                self._evk = self._keygen.evaluation_keys(
                    rotations=self.plan.rotations, conjugation=self.plan.conjugation)
            return self._evk

    def evaluation_key_bytes(self) -> bytes:
        """The wire bytes of the model's evaluation keys (those :meth:`evaluation_keys`
        returns when it was called first; otherwise generated for this call and not kept as
        objects): what ``Engine.register_tenant`` takes (public material only)."""
        with self._lock:
            if self._evk_bytes is None:
                # the key objects are not kept for this: a client only ships its keys, and
                # holding them doubles its memory (192 MB per tenant at N14)
                evk = self._evk or self._keygen.evaluation_keys(
                    rotations=self.plan.rotations, conjugation=self.plan.conjugation)
                self._evk_bytes = evk.to_bytes()
            return self._evk_bytes

    def encrypt_ciphertext(self, x) -> Ciphertext:
        """x ((count, input_dim) or (input_dim,), count <= ``plan.vectors``) encoded in the
        model's input layout at ``plan.input_level`` and encrypted: a Ciphertext of batch 1."""
        slots = self.plan.input_slots(x)
        pt = self._encoder.encode(slots, level=self.plan.input_level)
        return self._encryptor.encrypt(pt)

    def encrypt(self, x) -> bytes:
        """The request bytes of x (see :meth:`encrypt_ciphertext`)."""
        return self.encrypt_ciphertext(x).to_bytes()

    def decrypt(self, data, count: int | None = None) -> np.ndarray:
        """The (count, output_dim) real outputs of a result (wire bytes or a Ciphertext);
        ``count`` defaults to every vector the result holds (batch * ``plan.vectors``):
        pass the request's count to drop the lanes that repeated its vectors. Raises
        SerializationError for bad bytes, KeyMismatchError for a result of another key
        set."""
        ct = data if isinstance(data, Ciphertext) else \
            Ciphertext.from_bytes(data, self.context)
        z = self._encoder.decode(self._decryptor.decrypt(ct))
        return self.plan.output_vectors(z, count)

    def __repr__(self):
        return (f"Client(key_id={self.key_id.hex()}, model={self.model.name!r}, "
                f"backend={self.context.backend_name!r})")

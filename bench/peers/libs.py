"""The same CKKS operations on fhe_gpu, OpenFHE and SEAL, at the same parameters.

Each adapter builds a context for N = 2^logn with Q = [60] + L x [40] bits (L = 6 / 13 / 27
for N = 2^14 / 2^15 / 2^16), scale 2^40, a uniform ternary secret and public-key
encryption, and exposes :data:`OPS` as zero-argument callables plus the precision after one
ct x ct multiply + relinearize + rescale (``precision(trial)``: fresh inputs and
encryptions per trial, max and RMS error in bits). Key switching: fhe_gpu and OpenFHE use
hybrid key switching with K = 2 / 4 / 8 special 60-bit primes and dnum = 4 / 3 / 3 digits;
SEAL has only its own method (one 60-bit special prime, one digit per prime).

Imports of the libraries happen inside the adapters, after the caller has fixed the thread
count (OMP_NUM_THREADS, NUMBA_NUM_THREADS are read when a library loads).
"""
from __future__ import annotations

import numpy as np

#: operation names, in table order
OPS = ("keygen_relin", "encrypt", "decrypt", "add", "mul_plain", "mul_relin", "rescale",
       "rotate")
#: human-readable labels of OPS
OP_LABELS = {
    "keygen_relin": "relin keygen", "encrypt": "encrypt", "decrypt": "decrypt+decode",
    "add": "add", "mul_plain": "ct×pt", "mul_relin": "mul_relin", "rescale": "rescale",
    "rotate": "rotate 1",
}
LEVELS = {14: 6, 15: 13, 16: 27}
DNUM = {14: 4, 15: 3, 16: 3}
SPECIAL_PRIMES = {14: 2, 15: 4, 16: 8}
SCALE_BITS = 40
FIRST_BITS, SCALING_BITS, SPECIAL_BITS = 60, 40, 60


def inputs(logn: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two vectors of N/2 reals, uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    slots = 1 << (logn - 1)
    return rng.uniform(-1, 1, slots), rng.uniform(-1, 1, slots)


def precision_bits(expected, got) -> dict:
    """Precision of the real parts of ``got``: ``max_bits`` = -log2 of the largest absolute
    error over the slots (the figure the anchors quote), ``rms_bits`` = -log2 of the root
    mean square error (far less noisy from one encryption to the next)."""
    err = np.abs(np.asarray(expected) - np.real(np.asarray(got)))
    tiny = np.finfo(np.float64).tiny
    return {"max_bits": -float(np.log2(max(float(err.max()), tiny))),
            "rms_bits": -float(np.log2(max(float(np.sqrt(np.mean(err ** 2))), tiny)))}


def q_bits(logn: int) -> list[int]:
    """Bit sizes of the ciphertext primes at N = 2^logn."""
    return [FIRST_BITS] + [SCALING_BITS] * LEVELS[logn]


class Ours:
    """fhe_gpu (preset N14 / N15 / N16) on one backend."""

    name = "fhe_gpu"

    def __init__(self, logn: int, backend: str = "cpu"):
        import fhe_gpu as fg
        self.fg = fg
        params = fg.Parameters.preset(f"N{logn}")
        if (params.q_bits, params.p_bits, params.dnum) != (
                q_bits(logn), [SPECIAL_BITS] * SPECIAL_PRIMES[logn], DNUM[logn]):
            raise RuntimeError(f"preset N{logn} no longer matches the peers' parameters: "
                               f"{params!r}")
        self.params, self.logn = params, logn
        self.ctx = fg.Context(params, backend=backend)
        if getattr(self.ctx.backend, "emulate", False):
            raise SystemExit("fhe_gpu's CUDA backend is emulated on the CPU here "
                             "(FHE_GPU_CUDA_EMULATE): its timings are not GPU timings")
        self.kg = fg.KeyGenerator(self.ctx)
        self.evk = self.kg.evaluation_keys(rotations=[1])
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, self.kg.public_key())
        self.dec = fg.Decryptor(self.ctx, self.kg.secret_key)
        self.ev = fg.Evaluator(self.ctx, self.evk)
        self.x, self.y = inputs(logn)
        self.pt_x, self.pt_y = self.enc.encode(self.x), self.enc.encode(self.y)
        self.ct_x, self.ct_y = self.encryptor.encrypt(self.pt_x), self.encryptor.encrypt(self.pt_y)
        self.prod = self.ev.mul(self.ct_x, self.ct_y, rescale=False)

    def describe(self) -> dict:
        import numba
        p = self.params
        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = "not initialised"
        return {"library": "fhe_gpu " + self.fg.__version__, "backend": self.ctx.backend_name,
                "q_bits": p.q_bits, "p_bits": p.p_bits, "dnum": p.dnum, "log_qp": p.log_qp,
                "numba_threads": numba.get_num_threads(), "numba_threading_layer": layer}

    def ops(self) -> dict:
        ev, be = self.ev, self.ctx.backend

        def synced(fn):
            def run():
                out = fn()
                be.synchronize()
                return out
            return run

        return {name: synced(fn) for name, fn in {
            "keygen_relin": lambda: self.kg.evaluation_keys(),
            "encrypt": lambda: self.encryptor.encrypt(self.pt_x),
            "decrypt": lambda: self.enc.decode(self.dec.decrypt(self.ct_x)),
            "add": lambda: ev.add(self.ct_x, self.ct_y),
            "mul_plain": lambda: ev.mul(self.ct_x, self.pt_y, rescale=False),
            "mul_relin": lambda: ev.mul(self.ct_x, self.ct_y, rescale=False),
            "rescale": lambda: ev.rescale(self.prod),
            "rotate": lambda: ev.rotate(self.ct_x, 1),
        }.items()}

    def precision(self, trial: int = 0) -> dict:
        x, y = inputs(self.logn, seed=1 + trial)
        enc, ev = self.enc, self.ev
        cx, cy = (self.encryptor.encrypt(enc.encode(v)) for v in (x, y))
        out = ev.rescale(ev.mul(cx, cy, rescale=False))
        return precision_bits(x * y, enc.decode(self.dec.decrypt(out)))


class OpenFHE:
    """OpenFHE CKKS-RNS: hybrid key switching, FIXEDMANUAL rescaling."""

    name = "OpenFHE"

    def __init__(self, logn: int):
        import openfhe as of
        self.of, self.logn = of, logn
        self.cc = cc = of.GenCryptoContext(self._params())
        for feature in (of.PKESchemeFeature.PKE, of.PKESchemeFeature.KEYSWITCH,
                        of.PKESchemeFeature.LEVELEDSHE):
            cc.Enable(feature)
        self.keys = cc.KeyGen()
        cc.EvalMultKeyGen(self.keys.secretKey)
        cc.EvalRotateKeyGen(self.keys.secretKey, [1])
        self.x, self.y = inputs(logn)
        self.pt_x = cc.MakeCKKSPackedPlaintext(self.x)
        self.pt_y = cc.MakeCKKSPackedPlaintext(self.y)
        self.ct_x = cc.Encrypt(self.keys.publicKey, self.pt_x)
        self.ct_y = cc.Encrypt(self.keys.publicKey, self.pt_y)
        self.prod = cc.EvalMult(self.ct_x, self.ct_y)

    def _params(self):
        of, logn = self.of, self.logn
        p = of.CCParamsCKKSRNS()
        p.SetRingDim(1 << logn)
        p.SetBatchSize(1 << (logn - 1))
        p.SetMultiplicativeDepth(LEVELS[logn])
        p.SetFirstModSize(FIRST_BITS)
        p.SetScalingModSize(SCALING_BITS)
        p.SetScalingTechnique(of.FIXEDMANUAL)
        p.SetKeySwitchTechnique(of.HYBRID)
        p.SetNumLargeDigits(DNUM[logn])
        p.SetSecretKeyDist(of.UNIFORM_TERNARY)
        p.SetSecurityLevel(of.HEStd_128_classic)
        return p

    def describe(self) -> dict:
        return {"library": "OpenFHE " + _version("openfhe"), "q_bits": q_bits(self.logn),
                "p_bits": [SPECIAL_BITS] * SPECIAL_PRIMES[self.logn], "dnum": DNUM[self.logn],
                "special_primes_from_key_size": self.special_primes()}

    def special_primes(self) -> float:
        """K from the serialized relinearization key: size / (dnum·2·N·8) − limbs."""
        import os
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mk.bin")
            self.cc.SerializeEvalMultKey(path, self.of.BINARY)
            size = os.path.getsize(path)
        words = DNUM[self.logn] * 2 * (1 << self.logn) * 8
        return round(size / words - (LEVELS[self.logn] + 1), 2)

    def prepare(self, op: str) -> None:
        """Untimed step before each timed call: EvalMultKeyGen skips the work when a key
        for this secret key is already stored, so the stored one is dropped first."""
        if op == "keygen_relin":
            self.of.ClearEvalMultKeys()

    def ops(self) -> dict:
        cc, sk, pk = self.cc, self.keys.secretKey, self.keys.publicKey
        return {
            "keygen_relin": lambda: cc.EvalMultKeyGen(sk),
            "encrypt": lambda: cc.Encrypt(pk, self.pt_x),
            "decrypt": lambda: cc.Decrypt(self.ct_x, sk),
            "add": lambda: cc.EvalAdd(self.ct_x, self.ct_y),
            "mul_plain": lambda: cc.EvalMult(self.ct_x, self.pt_y),
            "mul_relin": lambda: cc.EvalMult(self.ct_x, self.ct_y),
            "rescale": lambda: cc.Rescale(self.prod),
            "rotate": lambda: cc.EvalRotate(self.ct_x, 1),
        }

    def precision(self, trial: int = 0) -> dict:
        x, y = inputs(self.logn, seed=1 + trial)
        cc, keys = self.cc, self.keys
        cx, cy = (cc.Encrypt(keys.publicKey, cc.MakeCKKSPackedPlaintext(v)) for v in (x, y))
        pt = cc.Decrypt(cc.Rescale(cc.EvalMult(cx, cy)), keys.secretKey)
        pt.SetLength(len(x))
        return precision_bits(x * y, np.asarray(pt.GetRealPackedValue()))


class Seal:
    """Microsoft SEAL through TenSEAL's ``sealapi`` bindings (SEAL's own C++ API)."""

    name = "SEAL"

    def __init__(self, logn: int):
        import tenseal.sealapi as s
        self.s, self.logn = s, logn
        n = 1 << logn
        parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(n)
        parms.set_coeff_modulus(s.CoeffModulus.Create(n, q_bits(logn) + [SPECIAL_BITS]))
        # SEAL's security table stops at 2^15; at 2^16 log QP = 1200 is within the
        # HomomorphicEncryption.org / OpenFHE bound (1747), so the check is skipped there.
        level = s.SEC_LEVEL_TYPE.TC128 if logn <= 15 else s.SEC_LEVEL_TYPE.NONE
        self.ctx = s.SEALContext(parms, True, level)
        self.keygen = s.KeyGenerator(self.ctx)
        self.sk = self.keygen.secret_key()
        pk, self.rk, self.gk = s.PublicKey(), s.RelinKeys(), s.GaloisKeys()
        self.keygen.create_public_key(pk)
        self.keygen.create_relin_keys(self.rk)
        # this overload takes Galois elements: SEAL's rotation by 1 is X -> X^3
        self.keygen.create_galois_keys([3], self.gk)
        self.encoder = s.CKKSEncoder(self.ctx)
        self.encryptor = s.Encryptor(self.ctx, pk)
        self.decryptor = s.Decryptor(self.ctx, self.sk)
        self.ev = s.Evaluator(self.ctx)
        self.x, self.y = inputs(logn)
        self.pt_x, self.pt_y = self._encode(self.x), self._encode(self.y)
        self.ct_x, self.ct_y = self._encrypt(self.pt_x), self._encrypt(self.pt_y)
        self.prod = self._mul_relin()

    def _encode(self, values):
        pt = self.s.Plaintext()
        self.encoder.encode(values.tolist(), float(2 ** SCALE_BITS), pt)
        return pt

    def _encrypt(self, pt):
        ct = self.s.Ciphertext()
        self.encryptor.encrypt(pt, ct)
        return ct

    def _decrypt(self, ct):
        pt = self.s.Plaintext()
        self.decryptor.decrypt(ct, pt)
        return self.encoder.decode_double(pt)

    def _binary(self, method, a, b):
        out = self.s.Ciphertext()
        method(a, b, out)
        return out

    def _mul_relin(self):
        out = self._binary(self.ev.multiply, self.ct_x, self.ct_y)
        self.ev.relinearize_inplace(out, self.rk)
        return out

    def _keygen_relin(self):
        rk = self.s.RelinKeys()
        self.keygen.create_relin_keys(rk)
        return rk

    def _rotate(self):
        out = self.s.Ciphertext()
        self.ev.rotate_vector(self.ct_x, 1, self.gk, out)
        return out

    def describe(self) -> dict:
        return {"library": "TenSEAL " + _version("tenseal") + " sealapi",
                "q_bits": q_bits(self.logn), "p_bits": [SPECIAL_BITS],
                "dnum": LEVELS[self.logn] + 1}

    def ops(self) -> dict:
        ev = self.ev
        return {
            "keygen_relin": self._keygen_relin,
            "encrypt": lambda: self._encrypt(self.pt_x),
            "decrypt": lambda: self._decrypt(self.ct_x),
            "add": lambda: self._binary(ev.add, self.ct_x, self.ct_y),
            "mul_plain": lambda: self._binary(ev.multiply_plain, self.ct_x, self.pt_y),
            "mul_relin": self._mul_relin,
            "rescale": self._rescale,
            "rotate": self._rotate,
        }

    def _rescale(self):
        out = self.s.Ciphertext()
        self.ev.rescale_to_next(self.prod, out)
        return out

    def precision(self, trial: int = 0) -> dict:
        x, y = inputs(self.logn, seed=1 + trial)
        cx, cy = (self._encrypt(self._encode(v)) for v in (x, y))
        prod = self._binary(self.ev.multiply, cx, cy)
        self.ev.relinearize_inplace(prod, self.rk)
        out = self.s.Ciphertext()
        self.ev.rescale_to_next(prod, out)
        return precision_bits(x * y, np.asarray(self._decrypt(out)))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


ADAPTERS = {"fhe_gpu": Ours, "openfhe": OpenFHE, "seal": Seal}

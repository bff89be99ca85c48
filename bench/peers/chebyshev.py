"""Encrypted Chebyshev evaluation of sigmoid on [-8, 8]: fhe_gpu against OpenFHE, one process.

    ~/.cache/fhe_gpu-bench/py310/bin/python bench/peers/chebyshev.py \
        [--degrees 59 27 119] [--repeats 3] [--logn 16] [--out bench/results/chebyshev.json]

What is compared. f(x) = 1/(1+exp(-x)) on [-8, 8], interpolated at Chebyshev nodes at the
same degree by both libraries and evaluated on one ciphertext holding N/2 values uniform in
[-8, 8] (all slots), at N = 2^logn with the same 13-limb chain: Q = [60] + 12 x [50] bits,
scale 2^50, hybrid key switching with dnum = 3 digits (both libraries then use 5 special
60-bit primes), uniform ternary secret, public-key encryption, 128-bit security.

* fhe_gpu: ``fc.evaluate(ev, ct, fc.activation("sigmoid", degree=d), assume_in_interval=True)``
  (recursive Chebyshev division over T_1, T_2, T_4, ...; ``p.evaluation_depth()`` levels:
  ceil(log2(d + 1)) + 1, the map onto [-1, 1] costing one rescale), and "fhe_gpu
  prescaled": the same on a ciphertext the client encoded at scale alpha * q_top (the map
  folded into the encoding: ceil(log2(d + 1)) levels).
* OpenFHE: ``cc.EvalChebyshevFunction(f, ct, -8, 8, d)`` (Paterson-Stockmeyer), once with
  FIXEDMANUAL rescaling (the convention of compare.py) and once with FLEXIBLEAUTO (its
  scale-tracking mode; the default FLEXIBLEAUTOEXT would add a 14th limb). The coefficient
  fit runs inside the timed call (d + 1 calls of f: microseconds).

How. OMP_NUM_THREADS = NUMBA_NUM_THREADS = 1 (set before any library loads) and
fhe_gpu.set_num_threads(1). Each library first evaluates once untimed (fhe_gpu's Numba JIT),
then per repeat, per degree, each library evaluates once, the order rotating between
repeats; the table gives the median wall time. Precision: -log2 max_slots |f(x) - dec| of
each timed run (median over runs reported), and the same for the cleartext twin (fhe_gpu:
p(x); OpenFHE: EvalChebyshevFunctionPtxt), which bounds what the encrypted result can reach.
Levels consumed: fhe_gpu ct.level - y.level; OpenFHE the rise in GetLevel() plus the
rescale still pending in the AUTO modes (noise scale degree - 1), checked against the tower
count of the serialized ciphertexts. Needs Python 3.10 (bench/peers/setup_peers.sh).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from runinfo import cpu_model, git  # noqa: E402

A, B = -8.0, 8.0
Q_BITS = [60] + [50] * 12
SCALE_BITS, DNUM = 50, 3


def secure(logn: int) -> bool:
    """128-bit security needs N = 2^16 for this chain; --logn < 16 is a smoke test only."""
    return logn >= 16


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def bits(expected, got) -> float:
    err = float(np.max(np.abs(np.asarray(expected) - np.real(np.asarray(got)))))
    return -math.log2(max(err, np.finfo(np.float64).tiny))


class FheGpu:
    def __init__(self, logn: int, prescaled: bool = False):
        import fhe_gpu as fg
        from fhe_gpu import circuits as fc
        fg.set_num_threads(1)
        self.fg, self.fc, self.prescaled = fg, fc, prescaled
        self.name = "fhe_gpu prescaled" if prescaled else "fhe_gpu"
        self.params = fg.Parameters(log_n=logn, q_bits=Q_BITS, p_bits=None,
                                    scale_bits=SCALE_BITS, security=128 if secure(logn) else None)
        if self.params.dnum != DNUM:
            raise RuntimeError(f"fhe_gpu picked dnum {self.params.dnum}, expected {DNUM}")
        ctx = fg.Context(self.params, backend="cpu")
        kg = fg.KeyGenerator(ctx)
        self.ev = fg.Evaluator(ctx, kg.evaluation_keys())
        self.enc = fg.Encoder(ctx)
        self.encryptor = fg.Encryptor(ctx, kg.public_key())
        self.dec = fg.Decryptor(ctx, kg.secret_key)

    def describe(self) -> dict:
        p = self.params
        return {"library": "fhe_gpu " + self.fg.__version__, "q_bits": p.q_bits,
                "p_bits": p.p_bits, "dnum": p.dnum, "log_qp": round(p.log_qp, 2),
                "threads": self.fg.get_num_threads()}

    def setup(self, x, degree: int):
        self.poly = self.fc.activation("sigmoid", degree=degree)
        scale = None
        if self.prescaled:   # the change of variable folded into the client's encoding
            top = self.params.max_level
            scale = self.poly.alpha * float(self.ev.context.q_primes[top])
        self.ct = self.encryptor.encrypt(self.enc.encode(x, scale=scale))
        return self.poly(x)  # cleartext twin

    def run(self):
        y = self.fc.evaluate(self.ev, self.ct, self.poly, assume_in_interval=True)
        self.ev.context.backend.synchronize()
        return y

    def finish(self, y) -> tuple[np.ndarray, dict]:
        out = self.enc.decode(self.dec.decrypt(y))
        return out, {"levels": self.ct.level - y.level, "level_in": self.ct.level,
                     "level_out": y.level, "stated_depth": self.poly.depth if self.prescaled
                 else self.poly.evaluation_depth()}


class OpenFHE:
    def __init__(self, logn: int, scaling: str):
        import openfhe as of
        self.of, self.n, self.name = of, 1 << logn, f"OpenFHE {scaling}"
        p = of.CCParamsCKKSRNS()
        for setter, value in (
                ("RingDim", self.n), ("BatchSize", self.n // 2),
                ("MultiplicativeDepth", len(Q_BITS) - 1), ("FirstModSize", Q_BITS[0]),
                ("ScalingModSize", SCALE_BITS), ("ScalingTechnique", getattr(of, scaling)),
                ("KeySwitchTechnique", of.HYBRID), ("NumLargeDigits", DNUM),
                ("SecretKeyDist", of.UNIFORM_TERNARY),
                ("SecurityLevel", of.HEStd_128_classic if secure(logn) else of.HEStd_NotSet)):
            getattr(p, "Set" + setter)(value)
        self.cc = cc = of.GenCryptoContext(p)
        for feature in ("PKE", "KEYSWITCH", "LEVELEDSHE", "ADVANCEDSHE"):
            cc.Enable(getattr(of.PKESchemeFeature, feature))
        self.keys = cc.KeyGen()
        cc.EvalMultKeyGen(self.keys.secretKey)
        self.f = lambda v: 1.0 / (1.0 + math.exp(-v))

    def describe(self) -> dict:
        from importlib.metadata import version
        return {"library": "OpenFHE " + version("openfhe"), "ring_dim": self.cc.GetRingDimension(),
                "q_bits": Q_BITS, "dnum": DNUM, "towers_fresh": self.towers(self.ct)}

    def towers(self, ct) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ct.bin")
            self.of.SerializeToFile(path, ct, self.of.BINARY)
            return round(os.path.getsize(path) / (2 * self.n * 8), 2)

    def setup(self, x, degree: int):
        self.degree = degree
        self.ct = self.cc.Encrypt(self.keys.publicKey, self.cc.MakeCKKSPackedPlaintext(x))
        return np.asarray(self.of.EvalChebyshevFunctionPtxt(self.f, list(x), A, B, degree))

    def run(self):
        return self.cc.EvalChebyshevFunction(self.f, self.ct, A, B, self.degree)

    def finish(self, y) -> tuple[np.ndarray, dict]:
        pt = self.cc.Decrypt(y, self.keys.secretKey)
        pt.SetLength(self.n // 2)
        pending = y.GetNoiseScaleDeg() - 1
        return np.asarray(pt.GetRealPackedValue()), {
            "levels": y.GetLevel() - self.ct.GetLevel() + pending,
            "level_in": self.ct.GetLevel(), "level_out": y.GetLevel(),
            "pending_rescales": pending, "towers_in": self.towers(self.ct),
            "towers_out": self.towers(y)}


def timed(fn):
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    gc.enable()
    return out, elapsed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--degrees", type=int, nargs="+", default=[59, 27, 119])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--logn", type=int, default=16)
    ap.add_argument("--scalings", nargs="+", default=["FIXEDMANUAL", "FLEXIBLEAUTO"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chebyshev.json"))
    args = ap.parse_args(argv)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "load_1min_before": os.getloadavg()[0],
            "python": platform.python_version(), "git_commit": git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "threads": 1, "logn": args.logn, "repeats": args.repeats,
            "command": " ".join([sys.executable] + sys.argv),
            "note": "shared machine: other processes may run during the measurement"}
    print(f"CPU: {meta['cpu']} ({meta['cpus']} cores, shared machine); "
          f"1-min load average before: {meta['load_1min_before']:.2f}", flush=True)
    libs = [FheGpu(args.logn), FheGpu(args.logn, prescaled=True)] + \
        [OpenFHE(args.logn, s) for s in args.scalings]
    rng = np.random.default_rng(2024)
    x = rng.uniform(A, B, 1 << (args.logn - 1))
    exact = sigmoid(x)
    res = {lib.name: {} for lib in libs}
    for lib in libs:  # untimed first call (JIT, caches)
        lib.setup(x, args.degrees[0])
        y, t = timed(lib.run)
        res[lib.name]["first_call_s"] = t
        print(f"{lib.name}: first call {t:.2f} s", file=sys.stderr, flush=True)
    meta["params"] = {lib.name: lib.describe() for lib in libs}
    for d in args.degrees:
        twins = {lib.name: lib.setup(x, d) for lib in libs}
        rows = {lib.name: {"times_s": [], "bits": [], "twin_bits": bits(exact, twins[lib.name])}
                for lib in libs}
        for r in range(args.repeats):
            order = libs[r % len(libs):] + libs[:r % len(libs)]
            for lib in order:
                y, t = timed(lib.run)
                out, levels = lib.finish(y)
                rows[lib.name]["times_s"].append(t)
                rows[lib.name]["bits"].append(bits(exact, out))
                rows[lib.name].update(levels)
                del y
            print(f"degree {d}, repeat {r + 1}: " + ", ".join(
                f"{n} {v['times_s'][-1]:.2f} s" for n, v in rows.items()),
                file=sys.stderr, flush=True)
        for name, row in rows.items():
            row["median_s"] = statistics.median(row["times_s"])
            row["median_bits"] = statistics.median(row["bits"])
            res[name][str(d)] = row
    meta["load_1min_after"] = os.getloadavg()[0]
    print(table(res, args.degrees, libs[0].name))
    print(f"\n1-min load average before {meta['load_1min_before']:.2f}, after "
          f"{meta['load_1min_after']:.2f}; CPU {meta['cpu']}; 1 thread; shared machine.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    print(f"wrote {out}")


def table(res: dict, degrees, ours: str) -> str:
    lines = ["| degree | library | median s (runs) | fhe_gpu / this | levels | precision bits "
             "(runs) | twin bits |", "|---|---|---|---|---|---|---|"]
    for d in degrees:
        base = res[ours][str(d)]["median_s"]
        for name, by_degree in res.items():
            row = by_degree[str(d)]
            runs = ", ".join(f"{t:.2f}" for t in row["times_s"])
            bruns = ", ".join(f"{b:.1f}" for b in row["bits"])
            ratio = "—" if name == ours else f"{base / row['median_s']:.2f}"
            lines.append(f"| {d} | {name} | {row['median_s']:.2f} ({runs}) | {ratio} | "
                         f"{row['levels']} | {row['median_bits']:.1f} ({bruns}) | "
                         f"{row['twin_bits']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

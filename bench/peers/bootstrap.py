"""CKKS bootstrapping: fhe_gpu against OpenFHE 1.6.1, one process.

    ~/.cache/fhe_gpu-bench/py310/bin/python bench/peers/bootstrap.py \
        [--seeds 20] [--logn 16] [--levels-left 4] [--iterations 1] \
        [--only openfhe|fhe_gpu|both] [--threads 1] [--out bench/results/bootstrap.json]

What is compared. One bootstrap of one ciphertext holding N/2 = 2^(logn-1) reals uniform in
[-1, 1] (all slots, numpy default_rng(seed)), per seed; both libraries get the same vectors.

* OpenFHE (CKKS, openfhe-python 1.6.1): ring dimension N = 2^logn, BatchSize N/2,
  SecretKeyDist SPARSE_ENCAPSULATED (sparse-secret encapsulation: the bootstrap switches to
  a sparse secret for ModRaise and back; ``--secret-dist`` picks another), levelBudget
  [3, 3] (CoeffsToSlots / SlotsToCoeffs), FirstModSize 60, ScalingModSize 59, ScalingTechnique
  FLEXIBLEAUTO (the mode of OpenFHE's bootstrapping examples), HYBRID key switching with
  NumLargeDigits (dnum) 3, HEStd_128_classic (HEStd_NotSet below logn 16: a smoke test).
  MultiplicativeDepth = GetBootstrapDepth([3, 3], dist) + --levels-left + (iterations - 1)
  (Meta-BTS spends one more level). EvalBootstrapSetup([3, 3], [0, 0], N/2), then KeyGen,
  EvalMultKeyGen and EvalBootstrapKeyGen(sk, N/2). The input is encrypted at level depth - 1
  (``MakeCKKSPackedPlaintext(x, 1, depth - 1)``, 2 towers: q0 and one 59-bit prime), as in
  OpenFHE's examples: level ``depth`` (q0 alone) is refused (DropLastElement error), the
  FLEXIBLEAUTO bootstrap spends that last prime itself before ModRaise. Timed:
  ``EvalBootstrap(ct)``, or ``EvalBootstrap(ct, 2, precision)`` with ``--iterations 2``.
* fhe_gpu: ``fc.BootstrapParameters.preset("N16")`` (``toy-N<logn>`` below 16, insecure;
  ``--fhe-gpu-preset`` picks another), ``fg.Context(bp.params, backend="cpu")``,
  ``kg.bootstrap_keys(bp)``, ``fc.Bootstrapper(ctx, btk, bp)``; the input is public-key
  encrypted at level 0 (one prime); timed: ``bt.bootstrap(ct, iterations=k)`` plus a backend
  synchronize. Its chain and scale are the preset's own (recorded under meta.params).

Levels left. OpenFHE's GetLevel() counts the primes dropped since a fresh ciphertext of
depth + 1 towers (FLEXIBLEAUTO adds no extra tower), and in the AUTO modes a rescale may be
pending (GetNoiseScaleDeg() == 2 after the bootstrap) that the next multiplication performs
first: levels left = depth - GetLevel() - (GetNoiseScaleDeg() - 1), checked against the
tower count of the serialized ciphertext (towers - 1 - pending). fhe_gpu: ``out.level``
(level l holds primes q_0..q_l; the input is at level 0).

Precision, per seed, on the real parts of the N/2 slots: mean bits = -log2(mean |x - y|),
max-error bits = -log2(max |x - y|); the table gives medians over the seeds and the worst
max-error bits. Meta-BTS needs the precision of one bootstrap as an input; unless
``--precision`` is given it is floor(max-error bits of the untimed one-iteration warm-up)
- 6: the residual, scaled by 2^precision, then stays below 2^-6 and the sine approximation
of the second bootstrap stays accurate (at logn 12, precision 8, 12, 14, 16, 17, 18 gave
max-error bits 32, 36, 38, 40, 41, 42; 19-20 gave 41 and 21-26 gave 39).

Keys. Time of KeyGen + EvalMultKeyGen + EvalBootstrapKeyGen (fhe_gpu: KeyGenerator,
public key and bootstrap_keys); size: SerializeEvalMultKey + SerializeEvalAutomorphismKey
(BINARY) to a temporary folder, file sizes summed (equal to SerializeEvalBootstrapKey's file
plus the relinearization key); count: the relinearization key plus every automorphism
index held (rotations, conjugation 2N - 1, and for SPARSE_ENCAPSULATED the two
encapsulation switching keys OpenFHE files under the even indices 2N - 4 and 2N - 2).
fhe_gpu: len(btk.to_bytes()); count: relinearization + Galois + encapsulation keys.
Setup time (context, EvalBootstrapSetup's precomputed plaintexts / Bootstrapper
construction) is reported apart. Memory: ru_maxrss (the process's
peak, so with --only both the second library's figure includes the first's) and VmRSS
(current) after each library's key generation and after all bootstraps.

How. OMP_NUM_THREADS = NUMBA_NUM_THREADS = --threads (default 1), set before any library
loads, and fhe_gpu.set_num_threads. Each library bootstraps once untimed (fhe_gpu's Numba
JIT, OpenFHE's lazy precomputation; seed 10**6), then per seed each library encrypts
(untimed), bootstraps (timed, gc off) and decrypts, the order of the libraries alternating
between seeds. Reported: median wall time per bootstrap and the ratio fhe_gpu / OpenFHE,
1-min load average before and after, CPU model, git commit. Needs Python 3.10
(bench/peers/setup_peers.sh).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
THREAD_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _threads_from_argv(argv) -> int:
    """--threads as given on the command line (read before numpy / the libraries load)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
    return 1


for _var in THREAD_VARS:
    os.environ[_var] = str(_threads_from_argv(sys.argv[1:]))
if str(ROOT) not in sys.path:  # the working tree's fhe_gpu (the venv also has it editable)
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from runinfo import cpu_model, git  # noqa: E402

LEVEL_BUDGET = [3, 3]
FIRST_MOD_BITS, SCALE_BITS, DNUM = 60, 59, 3
WARMUP_SEED = 10**6
META_BTS_MARGIN = 6


def precision(x, y) -> dict:
    """Mean and max-error bits of y against x (real parts)."""
    err = np.abs(np.asarray(x, dtype=np.float64) - np.real(np.asarray(y)))
    tiny = np.finfo(np.float64).tiny
    return {"mean_bits": -math.log2(max(float(err.mean()), tiny)),
            "max_bits": -math.log2(max(float(err.max()), tiny))}


def memory() -> dict:
    """Peak (ru_maxrss) and current (VmRSS) resident set size of this process, MiB."""
    current = None
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "current_rss_mib": current}


def timed(fn):
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        gc.enable()
    return out, time.perf_counter() - t0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class OpenFHE:
    name = "OpenFHE"

    def __init__(self, args):
        import openfhe as of
        self.of, self.logn = of, args.logn
        self.n, self.slots = 1 << args.logn, 1 << (args.logn - 1)
        self.iterations, self.precision = args.iterations, args.precision
        self.dist_name = args.secret_dist
        self.dist = getattr(of, args.secret_dist, None)
        if self.dist is None:
            raise SystemExit(f"openfhe {self.version()} has no SecretKeyDist {args.secret_dist}; "
                             "pass --secret-dist UNIFORM_TERNARY")
        self.boot_depth = of.CryptoContext.GetBootstrapDepth(LEVEL_BUDGET, self.dist)
        self.depth = self.boot_depth + args.levels_left + (args.iterations - 1)
        security = of.HEStd_128_classic if args.logn >= 16 else of.HEStd_NotSet
        p = of.CCParamsCKKSRNS()
        for setter, value in (
                ("SecretKeyDist", self.dist), ("SecurityLevel", security),
                ("RingDim", self.n), ("BatchSize", self.slots),
                ("FirstModSize", FIRST_MOD_BITS), ("ScalingModSize", SCALE_BITS),
                ("ScalingTechnique", of.FLEXIBLEAUTO), ("KeySwitchTechnique", of.HYBRID),
                ("NumLargeDigits", DNUM), ("MultiplicativeDepth", self.depth)):
            getattr(p, "Set" + setter)(value)
        self.security = str(security).split(".")[-1]
        t0 = time.perf_counter()
        try:
            self.cc = cc = of.GenCryptoContext(p)
        except RuntimeError as exc:   # e.g. depth 21 at N = 2^16 breaks HEStd_128_classic
            raise SystemExit(f"OpenFHE refused depth {self.depth} at N = 2^{args.logn}: {exc}\n"
                             "lower --levels-left (Meta-BTS spends one level more)") from None
        for feature in ("PKE", "KEYSWITCH", "LEVELEDSHE", "ADVANCEDSHE", "FHE"):
            cc.Enable(getattr(of.PKESchemeFeature, feature))
        cc.EvalBootstrapSetup(LEVEL_BUDGET, [0, 0], self.slots)
        self.setup_s = time.perf_counter() - t0

    @staticmethod
    def version() -> str:
        from importlib.metadata import version
        return version("openfhe")

    def keygen(self) -> None:
        cc = self.cc
        self.keys = cc.KeyGen()
        cc.EvalMultKeyGen(self.keys.secretKey)
        cc.EvalBootstrapKeyGen(self.keys.secretKey, self.slots)

    def describe(self) -> dict:
        cc = self.cc
        return {"library": "OpenFHE " + self.version(), "ring_dim": cc.GetRingDimension(),
                "slots": self.slots, "secret_key_dist": self.dist_name,
                "security": self.security, "level_budget": LEVEL_BUDGET,
                "scaling_technique": str(cc.GetScalingTechnique()).split(".")[-1],
                "first_mod_bits": FIRST_MOD_BITS, "scaling_mod_bits": SCALE_BITS,
                "dnum": DNUM, "bootstrap_depth": self.boot_depth,
                "multiplicative_depth": self.depth, "q_towers": self.depth + 1,
                # GetModulus() is a double (inf beyond 1024 bits): the nominal sum instead
                "log2_q_nominal": FIRST_MOD_BITS + SCALE_BITS * self.depth,
                "iterations": self.iterations, "meta_bts_precision": self.precision}

    def key_info(self, tmpdir=None) -> dict:
        cc, of = self.cc, self.of
        indices = cc.GetExistingEvalAutomorphismKeyIndices(self.keys.secretKey.GetKeyTag())
        m = 2 * self.n
        info = {"automorphism_keys": len(indices), "relin_keys": 1,
                "key_count": len(indices) + 1,
                "conjugation_keys": sum(1 for i in indices if i == m - 1),
                "encapsulation_keys": sum(1 for i in indices if i % 2 == 0)}
        info["rotation_keys"] = (len(indices) - info["conjugation_keys"]
                                 - info["encapsulation_keys"])
        if tmpdir is False:
            return info
        with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
            mult, auto = os.path.join(tmp, "mult.bin"), os.path.join(tmp, "auto.bin")
            if not cc.SerializeEvalMultKey(mult, of.BINARY, ""):
                raise RuntimeError("SerializeEvalMultKey failed")
            info["relin_key_bytes"] = os.path.getsize(mult)
            os.remove(mult)
            if not cc.SerializeEvalAutomorphismKey(auto, of.BINARY, ""):
                raise RuntimeError("SerializeEvalAutomorphismKey failed")
            info["automorphism_key_bytes"] = os.path.getsize(auto)
        info["key_bytes"] = info["relin_key_bytes"] + info["automorphism_key_bytes"]
        # digits x 2 x (Q + P towers) x N words: the special-prime count, derived
        info["qp_towers_from_relin_key"] = round(info["relin_key_bytes"] / (DNUM * 2 * self.n * 8))
        return info

    def encrypt(self, x):
        pt = self.cc.MakeCKKSPackedPlaintext(list(map(float, x)), 1, self.depth - 1)
        return self.cc.Encrypt(self.keys.publicKey, pt)

    def bootstrap(self, ct, iterations=None):
        iterations = self.iterations if iterations is None else iterations
        if iterations == 1:
            return self.cc.EvalBootstrap(ct)
        return self.cc.EvalBootstrap(ct, iterations, self.precision)

    def decrypt(self, ct) -> np.ndarray:
        pt = self.cc.Decrypt(ct, self.keys.secretKey)
        pt.SetLength(self.slots)
        return np.asarray(pt.GetRealPackedValue())

    def warmup(self, x) -> dict:
        """One untimed single-iteration bootstrap; fixes the Meta-BTS precision from it."""
        y, t = timed(lambda: self.bootstrap(self.encrypt(x), iterations=1))
        bits = precision(x, self.decrypt(y))
        if self.iterations > 1 and self.precision is None:
            self.precision = max(1, math.floor(bits["max_bits"]) - META_BTS_MARGIN)
        return {"warmup_s": t, "warmup_one_iteration": bits,
                "meta_bts_precision": self.precision}

    def towers(self, ct) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ct.bin")
            self.of.SerializeToFile(path, ct, self.of.BINARY)
            return int(os.path.getsize(path) // (2 * self.n * 8))

    def levels(self, ct, out) -> dict:
        pending = out.GetNoiseScaleDeg() - 1
        left = self.depth - out.GetLevel() - pending
        towers_in, towers_out = self.towers(ct), self.towers(out)
        return {"levels_left": left, "level_in": ct.GetLevel(), "level_out": out.GetLevel(),
                "pending_rescales": pending, "towers_in": towers_in, "towers_out": towers_out,
                "levels_left_by_towers": towers_out - 1 - pending}


def import_fhe_gpu():
    """fhe_gpu and fhe_gpu.circuits, or SystemExit when the bootstrapper is not there yet."""
    try:
        import fhe_gpu as fg
        from fhe_gpu import circuits as fc
    except ImportError as exc:
        raise SystemExit(f"cannot import fhe_gpu from {ROOT}: {exc}") from None
    missing = [n for n in ("Bootstrapper", "BootstrapParameters") if not hasattr(fc, n)]
    if missing:
        raise SystemExit(f"fhe_gpu {fg.__version__} ({fg.__file__}) has no "
                         f"fhe_gpu.circuits.{' / '.join(missing)}: its bootstrapper is not "
                         "implemented yet. Run with --only openfhe.")
    return fg, fc


class FheGpu:
    name = "fhe_gpu"

    def __init__(self, args):
        self.fg, self.fc = fg, fc = import_fhe_gpu()
        fg.set_num_threads(args.threads)
        self.iterations, self.slots = args.iterations, 1 << (args.logn - 1)
        self.preset = args.fhe_gpu_preset or ("N16" if args.logn == 16 else f"toy-N{args.logn}")
        t0 = time.perf_counter()
        self.bp = bp = fc.BootstrapParameters.preset(self.preset)
        if bp.slots != self.slots:
            raise SystemExit(f"fhe_gpu preset {self.preset} bootstraps {bp.slots} slots, "
                             f"the benchmark encrypts {self.slots} (--logn {args.logn})")
        self.ctx = fg.Context(bp.params, backend="cpu")
        self.setup_s = time.perf_counter() - t0

    def keygen(self) -> None:
        fg = self.fg
        # presets without encapsulation run ModRaise under a sparse main secret
        weight = None if getattr(self.bp, "encapsulate", True) else self.bp.sparse_weight
        self.kg = kg = fg.KeyGenerator(self.ctx, hamming_weight=weight)
        self.btk = kg.bootstrap_keys(self.bp)
        self.enc = fg.Encoder(self.ctx)
        self.encryptor = fg.Encryptor(self.ctx, kg.public_key())
        self.dec = fg.Decryptor(self.ctx, kg.secret_key)
        t0 = time.perf_counter()   # counted as setup, not key generation
        self.bt = self.fc.Bootstrapper(self.ctx, self.btk, self.bp)
        self.setup_s += time.perf_counter() - t0

    def describe(self) -> dict:
        p = self.bp.params
        return {"library": "fhe_gpu " + self.fg.__version__, "preset": self.preset,
                "log_n": p.log_n, "slots": self.bp.slots, "q_bits": p.q_bits,
                "p_bits": p.p_bits, "dnum": p.dnum, "log_qp": round(p.log_qp, 2),
                "output_level": self.bp.output_level, "iterations": self.iterations,
                "bootstrap": self.bp.describe() if hasattr(self.bp, "describe") else None,
                "threads": self.fg.get_num_threads()}

    def key_info(self, tmpdir=None) -> dict:
        btk, ctx = self.btk, self.ctx
        galois = dict(getattr(btk, "galois", {}))
        encaps = sum(getattr(btk, k, None) is not None for k in ("to_sparse", "from_sparse"))
        relin = int(getattr(btk, "relin", None) is not None)
        conj = int(getattr(ctx, "conjugation_element", None) in galois)
        info = {"automorphism_keys": len(galois), "relin_keys": relin,
                "conjugation_keys": conj, "rotation_keys": len(galois) - conj,
                "encapsulation_keys": encaps, "key_count": len(galois) + relin + encaps}
        if tmpdir is not False:
            info["key_bytes"] = len(self.btk.to_bytes())
        return info

    def encrypt(self, x):
        return self.encryptor.encrypt(self.enc.encode(x, level=0))

    def bootstrap(self, ct, iterations=None):
        iterations = self.iterations if iterations is None else iterations
        out = self.bt.bootstrap(ct, iterations=iterations)
        self.ctx.backend.synchronize()
        return out

    def decrypt(self, ct) -> np.ndarray:
        y = self.enc.decode(self.dec.decrypt(ct))
        return np.real(y[0] if y.ndim == 2 else y)

    def warmup(self, x) -> dict:
        y, t = timed(lambda: self.bootstrap(self.encrypt(x)))
        return {"warmup_s": t, "warmup": precision(x, self.decrypt(y))}

    def levels(self, ct, out) -> dict:
        return {"levels_left": out.level, "level_in": ct.level, "level_out": out.level,
                "stated_output_level": self.bp.output_level}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20, help="timed bootstraps per library")
    ap.add_argument("--logn", type=int, default=16,
                    help="log2 ring dimension; below 16 security is HEStd_NotSet (smoke test)")
    ap.add_argument("--levels-left", type=int, default=4,
                    help="levels the OpenFHE context keeps after bootstrapping")
    ap.add_argument("--iterations", type=int, default=1, choices=[1, 2],
                    help="2: Meta-BTS (EvalBootstrap(ct, 2, precision); fhe_gpu iterations=2)")
    ap.add_argument("--precision", type=int, default=None,
                    help="OpenFHE Meta-BTS precision input (default: calibrated, see above)")
    ap.add_argument("--secret-dist", default="SPARSE_ENCAPSULATED",
                    choices=["SPARSE_ENCAPSULATED", "UNIFORM_TERNARY", "SPARSE_TERNARY"])
    ap.add_argument("--only", default="both", choices=["openfhe", "fhe_gpu", "both"])
    ap.add_argument("--threads", type=int, default=1,
                    help="OMP_NUM_THREADS / NUMBA_NUM_THREADS (read before the imports)")
    ap.add_argument("--fhe-gpu-preset", default=None,
                    help="fc.BootstrapParameters preset (default N16, toy-N<logn> below 16)")
    ap.add_argument("--skip-key-bytes", action="store_true",
                    help="do not serialize the keys to measure their size")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/"
                    "bootstrap[_N<logn>][_it2][_<only>].json)")
    args = ap.parse_args(argv)
    if args.threads != int(os.environ["OMP_NUM_THREADS"]):
        ap.error("--threads must be given on the command line (it is read before the imports)")
    if args.out is None:
        suffix = ("" if args.logn == 16 else f"_N{args.logn}") + \
            ("" if args.iterations == 1 else f"_it{args.iterations}") + \
            ("" if args.only == "both" else f"_{args.only}")
        args.out = str(ROOT / "bench" / "results" / f"bootstrap{suffix}.json")
    return args


def make_libs(args) -> list:
    """fhe_gpu is checked first: a missing bootstrapper fails before OpenFHE's setup."""
    libs = []
    if args.only in ("fhe_gpu", "both"):
        libs.append(FheGpu(args))
    if args.only in ("openfhe", "both"):
        log(f"OpenFHE: setting up N = 2^{args.logn} (EvalBootstrapSetup)...")
        libs.insert(0, OpenFHE(args))
    return libs


def prepare(lib, args) -> dict:
    """Key generation (timed), key sizes and memory after it, warm-up bootstrap."""
    _, keygen_s = timed(lib.keygen)
    row = {"setup_s": lib.setup_s, "keygen_s": keygen_s, "memory_after_keygen": memory()}
    log(f"{lib.name}: setup {lib.setup_s:.1f} s, key generation {keygen_s:.1f} s, "
        f"peak RSS {row['memory_after_keygen']['peak_rss_mib']:.0f} MiB")
    t0 = time.perf_counter()
    row["keys"] = lib.key_info(False if args.skip_key_bytes else None)
    row["keys"]["measure_s"] = time.perf_counter() - t0
    log(f"{lib.name}: keys {row['keys']}")
    x = np.random.default_rng(WARMUP_SEED).uniform(-1.0, 1.0, lib.slots)
    row.update(lib.warmup(x))
    log(f"{lib.name}: untimed warm-up bootstrap {row['warmup_s']:.1f} s")
    return row


def run_seed(lib, x) -> dict:
    ct = lib.encrypt(x)
    out, t = timed(lambda: lib.bootstrap(ct))
    row = {"time_s": t, **precision(x, lib.decrypt(out)), **lib.levels(ct, out)}
    del out
    return row


def summarize(row: dict) -> None:
    runs = row["runs"]
    row["median_s"] = statistics.median(r["time_s"] for r in runs)
    row["median_mean_bits"] = statistics.median(r["mean_bits"] for r in runs)
    row["median_max_bits"] = statistics.median(r["max_bits"] for r in runs)
    row["worst_max_bits"] = min(r["max_bits"] for r in runs)
    row["levels_left"] = sorted({r["levels_left"] for r in runs})


def platform_meta(args) -> dict:
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu_model(),
            "cpus": os.cpu_count(), "load_1min_before": os.getloadavg()[0],
            "python": platform.python_version(), "platform": platform.platform(),
            "git_commit": git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "threads": args.threads, "logn": args.logn, "seeds": args.seeds,
            "iterations": args.iterations, "levels_left_requested": args.levels_left,
            "command": " ".join([sys.executable] + sys.argv),
            "note": "shared machine: other processes may run during the measurement"}


def main(argv=None) -> None:
    args = parse_args(argv)
    meta = platform_meta(args)
    print(f"CPU: {meta['cpu']} ({meta['cpus']} cores, shared machine); "
          f"1-min load average before: {meta['load_1min_before']:.2f}", flush=True)
    libs = make_libs(args)
    res = {lib.name: prepare(lib, args) for lib in libs}
    meta["params"] = {lib.name: lib.describe() for lib in libs}
    for lib in libs:
        res[lib.name]["runs"] = []
    for seed in range(args.seeds):
        x = np.random.default_rng(seed).uniform(-1.0, 1.0, libs[0].slots)
        order = libs[seed % len(libs):] + libs[:seed % len(libs)]
        for lib in order:
            row = run_seed(lib, x)
            res[lib.name]["runs"].append({"seed": seed, **row})
        log(f"seed {seed}: " + ", ".join(
            f"{n} {v['runs'][-1]['time_s']:.2f} s ({v['runs'][-1]['mean_bits']:.1f}/"
            f"{v['runs'][-1]['max_bits']:.1f} bits)" for n, v in res.items()))
    for row in res.values():
        row["memory_after_bootstraps"] = memory()
        summarize(row)
    if len(libs) == 2:
        meta["time_ratio_fhe_gpu_over_openfhe"] = (res["fhe_gpu"]["median_s"]
                                                   / res["OpenFHE"]["median_s"])
    meta["load_1min_after"] = os.getloadavg()[0]
    print(table(res, args))
    print(f"\n1-min load average before {meta['load_1min_before']:.2f}, after "
          f"{meta['load_1min_after']:.2f}; CPU {meta['cpu']}; {args.threads} thread(s); "
          "shared machine.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    print(f"wrote {out}")


def table(res: dict, args) -> str:
    what = "Meta-BTS, 2 iterations" if args.iterations == 2 else "1 iteration"
    lines = [f"N = 2^{args.logn}, {2 ** (args.logn - 1)} slots, {what}, {args.seeds} seeds",
             "| library | median s (min-max) | fhe_gpu / this | mean bits | max bits "
             "(worst) | levels left | keygen s | key MB (count) | peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    ours = res.get("fhe_gpu", {}).get("median_s")
    for name, row in res.items():
        times = [r["time_s"] for r in row["runs"]]
        ratio = "—" if ours is None or name == "fhe_gpu" else f"{ours / row['median_s']:.2f}"
        keys = row["keys"]
        size = f"{keys['key_bytes'] / 1e6:.0f}" if "key_bytes" in keys else "—"
        levels = "/".join(str(v) for v in row["levels_left"])
        lines.append(
            f"| {name} | {row['median_s']:.2f} ({min(times):.2f}-{max(times):.2f}) | {ratio} | "
            f"{row['median_mean_bits']:.1f} | {row['median_max_bits']:.1f} "
            f"({row['worst_max_bits']:.1f}) | {levels} | {row['keygen_s']:.1f} | "
            f"{size} ({keys.get('key_count', '?')}) | "
            f"{row['memory_after_bootstraps']['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Peak memory of bootstrapping: key generation plus one bootstrap, in a fresh process.

    python bench/bootstrap_memory.py [--preset N16] [--full-keys] [--out FILE]

Reads ru_maxrss (the process's peak resident set) after KeyGenerator + public key +
``bootstrap_keys`` and after the Bootstrapper's first bootstrap (which encodes and caches
every DFT diagonal), at 1 kernel thread. ``--full-keys`` holds the keys with a expanded
(``compact=False``) instead of b + seed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="N16")
    ap.add_argument("--full-keys", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    import numpy as np
    import fhe_gpu as fg
    from fhe_gpu import circuits as fc
    fg.set_num_threads(1)
    bp = fc.BootstrapParameters.preset(args.preset)
    ctx = fg.Context(bp.params, backend="cpu")
    kg = fg.KeyGenerator(ctx, hamming_weight=None if bp.encapsulate else bp.sparse_weight)
    pk = kg.public_key()
    t0 = time.perf_counter()
    keys = kg.bootstrap_keys(bp, compact=not args.full_keys)
    row = {"preset": bp.describe(), "compact_keys": not args.full_keys,
           "keygen_s": time.perf_counter() - t0, "peak_after_keygen_mib": peak_mib()}
    bt = fc.Bootstrapper(ctx, keys, bp)
    enc = fg.Encoder(ctx)
    x = np.random.default_rng(0).uniform(-1, 1, ctx.slots)
    ct = fg.Encryptor(ctx, pk).encrypt(enc.encode(x, level=0))
    t0 = time.perf_counter()
    out = bt.bootstrap(ct)
    row.update(first_bootstrap_s=time.perf_counter() - t0,
               peak_after_bootstrap_mib=peak_mib(), levels_left=out.level,
               load=os.getloadavg()[0])
    tag = "_full" if args.full_keys else ""
    path = Path(args.out or f"bench/results/bootstrap_memory_{args.preset}{tag}.json")
    path.write_text(json.dumps(row, indent=1))
    print(json.dumps(row))


if __name__ == "__main__":
    main()

"""Peak memory of ``EvaluationKeys.to_bytes`` at N=2^16: output size against the growth of
the resident set while serializing, measured in a fresh subprocess.

    python bench/keys_to_bytes.py --preset N16 --rotations 30 [--legacy]

The child generates the keys (relinearization, ``--rotations`` Galois keys for steps
1..k/2 and -1..-k/2, and conjugation), serializes a public key to warm the codec, resets
the RSS high-water mark (``echo 5 > /proc/self/clear_refs``) and reads VmRSS, calls
``evk.to_bytes()`` and reads VmHWM: the peak increase is VmHWM - VmRSS before. It also
reports ru_maxrss before/after (which cannot be reset, so it shows the growth only when
serializing is the process' peak). ``--legacy`` then measures, the same way, the writer
this project had before version 2 (a host copy of every packed half-key, a bytearray,
then ``bytes(bytearray)``), for comparison. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MIB = 1 << 20


def _status(key: str) -> int:
    """A field of /proc/self/status in bytes."""
    with open("/proc/self/status") as f:
        return int(next(s for s in f if s.startswith(key)).split()[1]) * 1024


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(fn) -> dict:
    """Output size, peak RSS increase (VmHWM reset) and time of ``fn()``."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    rss, maxrss = _status("VmRSS:"), _maxrss()
    start = time.perf_counter()
    size = len(fn())
    seconds = time.perf_counter() - start
    peak = _status("VmHWM:") - rss
    return {"output_bytes": size, "peak_rss_increase_bytes": peak,
            "peak_over_output": round(peak / size, 4), "seconds": round(seconds, 2),
            "ru_maxrss_increase_bytes": _maxrss() - maxrss}


def _legacy_to_bytes(evk) -> bytes:
    """The pre-v2 writer: host copies of every packed block, a bytearray, then bytes()."""
    import numpy as np

    from fhe_gpu.serialize import _codec, keys
    from fhe_gpu.serialize.format import FLAG_SEEDED, KeyIdRule, Kind, Layout, header
    ctx = evk.context
    layout = Layout(ctx.q_primes + ctx.p_primes, ctx.n)
    parts = [header(Kind.EVALUATION_KEYS, evk.fingerprint, 0, evk.key_id, KeyIdRule.REQUIRED)
             + keys.EVAL_KEYS.pack(evk.relin is not None, len(evk.galois))]
    for elt, key in [(None, evk.relin)] + sorted(evk.galois.items()):
        head = b"" if elt is None else keys.GALOIS_ELT.pack(elt)
        parts.append(head + keys.KEY_RECORD.pack(FLAG_SEEDED, ctx.n.bit_length() - 1,
                                                 keys.digits(ctx), layout.limbs))
        parts.append(np.ascontiguousarray(ctx.backend.to_host(key.data)[:, 0])
                     .reshape(-1, ctx.n))
        parts.append(bytes(key.seed))
    total = sum(len(p) if isinstance(p, bytes) else
                layout.nbytes * (p.shape[0] // layout.limbs) for p in parts)
    out, pos = bytearray(total), 0
    for p in parts:
        if isinstance(p, bytes):
            out[pos:pos + len(p)] = p
            pos += len(p)
        else:
            pos = _codec.pack_into(out, pos, p, layout.widths, layout.moduli)
    return bytes(out)


def child(args) -> dict:
    """Generate the keys and measure (runs in the subprocess)."""
    import logging

    import fhe_gpu as fg
    logging.disable(logging.WARNING)
    ctx = fg.Context(fg.Parameters.preset(args.preset), backend="cpu")
    start = time.perf_counter()
    kg = fg.KeyGenerator(ctx, seed=b"\x11" * 32)
    half = args.rotations // 2
    steps = [k for k in range(1, args.rotations - half + 1)] + [-k for k in range(1, half + 1)]
    evk = kg.evaluation_keys(rotations=steps, conjugation=True)
    keygen_s = time.perf_counter() - start
    kg.public_key().to_bytes()
    report = {"preset": args.preset, "n": ctx.n, "galois_keys": len(evk.galois),
              "keygen_seconds": round(keygen_s, 1),
              "keys_in_memory_bytes": sum(int(k.data.nbytes) for k in
                                          [evk.relin] + list(evk.galois.values())),
              "rss_before_bytes": _status("VmRSS:"), "to_bytes": _measure(evk.to_bytes)}
    if args.legacy:
        report["legacy_to_bytes"] = _measure(lambda: _legacy_to_bytes(evk))
    return report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="N16")
    ap.add_argument("--rotations", type=int, default=30)
    ap.add_argument("--legacy", action="store_true", help="also measure the pre-v2 writer")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    cmd = [sys.executable, __file__, "--child", "--preset", args.preset,
           "--rotations", str(args.rotations)] + (["--legacy"] if args.legacy else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))
    for name in ("to_bytes", "legacy_to_bytes"):
        if name in report:
            r = report[name]
            print(f"{name}: output {r['output_bytes'] / MIB:,.1f} MiB, peak RSS increase "
                  f"{r['peak_rss_increase_bytes'] / MIB:,.1f} MiB = {r['peak_over_output']}x "
                  f"the output, {r['seconds']} s", file=sys.stderr)


if __name__ == "__main__":
    main()

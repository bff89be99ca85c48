"""Precision cost of noise flooding on decryption (IND-CPA^D, see SECURITY.md).

    python bench/flooding.py [--backend cpu] [--trials 3] [--json out.json]

For the preset N14 (40-bit scale) and a 60-bit-scale chain at N=2^14, on a fresh
ciphertext and on a ct x ct product (relinearized and rescaled): precision in bits
(-log2 of the largest slot error, fg.precision_bits) without flooding and with flooding at
statistical_bits 30 and 40 (queries=1), measured (mean over trials) and predicted by the
Decryptor, with log2 of the error bound B and of the flooding deviation sigma_f. A setting
whose flooded result would keep no bit of the value is refused by the Decryptor
(ModulusOverflowError): its predicted precision is shown with "refused".
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np

import fhe_gpu as fg

STAT_BITS = (30, 40)


def parameter_sets() -> dict:
    """The parameter sets measured: name -> Parameters."""
    return {
        "N14 (scale 2^40)": fg.Parameters.preset("N14"),
        "N14, 60-bit chain (scale 2^60)": fg.Parameters(
            log_n=14, q_bits=[61, 60, 60, 60, 60], p_bits=[61, 61], scale_bits=60),
    }


def _ciphertexts(ctx, seed: int):
    """{"fresh": (ct, want), "mul": (ct, want)} for values uniform in [-1, 1]."""
    kg = fg.KeyGenerator(ctx)
    enc, encryptor = fg.Encoder(ctx), fg.Encryptor(ctx, kg.public_key())
    ev = fg.Evaluator(ctx, kg.evaluation_keys())
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, (2, ctx.slots))
    cx, cy = (encryptor.encrypt(enc.encode(v)) for v in (x, y))
    return kg, enc, {"fresh": (cx, x), "mul": (ev.mul(cx, cy), x * y)}


def _measure(dec, enc, ct, want, trials: int) -> dict:
    """Measured (mean bits over trials) and predicted precision, and decrypt time."""
    bits, times = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        pt = dec.decrypt(ct)
        times.append(time.perf_counter() - t0)
        bits.append(fg.precision_bits(want, enc.decode(pt)))
    return {"measured": statistics.fmean(bits), "predicted": dec.predicted_precision(ct),
            "decrypt_ms": 1e3 * statistics.median(times)}


def _row(ctx, kg, enc, ct, want, trials: int) -> dict:
    plain = fg.Decryptor(ctx, kg.secret_key)
    row = {"log2_scale": math.log2(ct.scale), "level": ct.level,
           "log2_sigma_e": 0.5 * math.log2(ct.noise_var),
           "none": _measure(plain, enc, ct, want, trials)}
    for s in STAT_BITS:
        dec = fg.Decryptor(ctx, kg.secret_key, flooding=True, statistical_bits=s)
        entry = {"log2_B": math.log2(dec.error_bound(ct)), "log2_sigma_f": dec.flooding_bits(ct)}
        try:
            entry.update(_measure(dec, enc, ct, want, trials))
        except fg.ModulusOverflowError as exc:
            entry.update(refused=str(exc), predicted=dec.predicted_precision(ct))
        row[f"s{s}"] = entry
    return row


def run(backend: str, trials: int) -> dict:
    """Every parameter set x circuit: the measurements of :func:`_row`."""
    out = {}
    for i, (name, params) in enumerate(parameter_sets().items()):
        ctx = fg.Context(params, backend=backend)
        kg, enc, cts = _ciphertexts(ctx, seed=i)
        for circuit, (ct, want) in cts.items():
            out[f"{name} / {circuit}"] = _row(ctx, kg, enc, ct, want, trials)
    return out


def _cell(entry: dict) -> str:
    if "refused" in entry:
        return f"refused (pred. {entry['predicted']:.1f})"
    return f"{entry['measured']:.1f} (pred. {entry['predicted']:.1f})"


def markdown(results: dict) -> str:
    """The results as a markdown table."""
    head = ("| setting | level, log2 scale | log2 sigma_e | no flooding | "
            + " | ".join(f"s={s}: log2 B / log2 sigma_f | s={s}: bits | s={s}: cost"
                         for s in STAT_BITS) + " |")
    lines = [head, "|" + "---|" * (4 + 3 * len(STAT_BITS))]
    for name, r in results.items():
        cells = [name, f"{r['level']}, {r['log2_scale']:.1f}", f"{r['log2_sigma_e']:.1f}",
                 _cell(r["none"])]
        for s in STAT_BITS:
            e = r[f"s{s}"]
            got = e.get("measured", e["predicted"])
            cells += [f"{e['log2_B']:.1f} / {e['log2_sigma_f']:.1f}", _cell(e),
                      f"{r['none']['measured'] - got:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Run the measurements and print the markdown table (and write JSON on request)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    results = run(args.backend, args.trials)
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

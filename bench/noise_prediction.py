"""Predicted against measured precision (bits) of common operations.

    python bench/noise_prediction.py            # N14 preset
    python bench/noise_prediction.py N13        # any preset, or S60 (q = [61, 60 x 4],
                                                # scale 2^60, N = 2^14)

"predicted" is fhe_gpu.ckks.noise.predicted_bits (a bound that holds with probability
1 - 2^-40); "actual" is -log2 of the largest slot error of one run. A prediction below the
measured value is the expected, conservative, direction.
"""
import sys

import numpy as np

import fhe_gpu as fg
from fhe_gpu.ckks import noise


def _params(name):
    if name == "S60":
        return fg.Parameters(log_n=14, q_bits=[61, 60, 60, 60, 60], p_bits=[61, 61],
                             scale_bits=60, security=None)
    return fg.Parameters.preset(name)


def main(name="N14"):
    params = _params(name)
    ctx = fg.Context(params, "cpu")
    kg = fg.KeyGenerator(ctx)
    ev = fg.Evaluator(ctx, kg.evaluation_keys(rotations=[1], conjugation=True))
    enc, dec = fg.Encoder(ctx), fg.Decryptor(ctx, kg.secret_key)
    pk_enc, sk_enc = fg.Encryptor(ctx, kg.public_key()), fg.Encryptor(ctx, kg.secret_key)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, params.slots), rng.uniform(-1, 1, params.slots)
    cx, cy = pk_enc.encrypt(enc.encode(x)), sk_enc.encrypt(enc.encode(y))
    m = ev.mul(cx, cy)
    cases = [("fresh (public key)", cx, x), ("fresh (secret key)", cy, y), ("mul", m, x * y),
             ("rotate", ev.rotate(cx, 1), np.roll(x, -1)), ("mul of mul", ev.mul(m, m),
                                                             (x * y) ** 2),
             ("ct x pt", ev.mul(cx, enc.encode(y)), x * y), ("scalar", ev.mul(cx, 0.3), 0.3 * x),
             ("add", ev.add(m, ev.mul_to_scale(cx, 1.0, m.scale)), x * y + x),
             ("conjugate", ev.conjugate(cx), x)]
    print(f"{name}: {params}")
    print("| op | measured bits | predicted bits |\n|---|---:|---:|")
    for label, ct, want in cases:
        got = enc.decode(dec.decrypt(ct))
        print(f"| {label} | {fg.precision_bits(want, got):.2f} | "
              f"{noise.predicted_bits(ct):.2f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])

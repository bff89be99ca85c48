"""The key-switching trade-off of a chain: dnum x special-prime count x N.

For a depth at a scale (Q = [first] + depth x [scale] bits) and each ring degree, every
distinct digit structure (dnum, alpha = ceil((L+1)/dnum) primes per digit) is listed
twice when the two differ: with the fewest 60-bit special primes the Parameters accept
(the largest digit at most one bit above P, the smallest keys and log QP, but rotations
lose bits: the digit-mean term of key switching) and with enough of them for key
switching to cost no precision (:func:`fhe_gpu.ckks.suggest.switching_margin_bits`).
Each row reports log QP against the security bound (margin), the size of one switching
key, the predicted precision after one rotation (Simulator) and the measured time of one
key switch at the top level (:func:`fhe_gpu.tooling.timing.key_switch_ms`: random key
material of the right shape at the real N, median of ``repeat`` calls after a warm-up).
"""
from __future__ import annotations

import logging
import math

from ..ckks import Context, Parameters, Simulator
from ..ckks.suggest import SPECIAL_BITS, switching_key_bytes, switching_margin_bits
from ..rlwe.security import MAX_LOG_QP
from .timing import key_switch_ms


def configs(log_n: int, depth: int, scale_bits: int = 40, first_bits: int = 60):
    """(dnum, special-prime count, policy) of every distinct digit structure of the chain,
    policy "minimal" (fewest primes allowed) or "safe" (no precision lost)."""
    nq = depth + 1
    q_bits = [first_bits] + [scale_bits] * depth
    seen, out = set(), []
    for dnum in range(1, nq + 1):
        alpha = math.ceil(nq / dnum)
        if alpha in seen:
            continue
        seen.add(alpha)
        dnum = math.ceil(nq / alpha)
        digit = max(sum(q_bits[s:s + alpha]) for s in range(0, nq, alpha))
        minimal = max(1, math.ceil((digit - 1) / SPECIAL_BITS))
        safe = math.ceil((digit + switching_margin_bits(1 << log_n, alpha)) / SPECIAL_BITS)
        out.append((dnum, minimal, "minimal"))
        if safe != minimal:
            out.append((dnum, safe, "safe"))
    return q_bits, out


def _params(log_n, q_bits, special, scale_bits, dnum) -> Parameters:
    quiet = logging.getLogger("fhe_gpu")
    was, quiet.disabled = quiet.disabled, True
    try:
        return Parameters(log_n, q_bits, [SPECIAL_BITS] * special, scale_bits, dnum,
                          security=None)
    finally:
        quiet.disabled = was


def rotation_bits(params: Parameters) -> float:
    """Predicted max-error precision of one rotation of a fresh ciphertext of values in
    [-1, 1] (the Simulator)."""
    import numpy as np
    sim = Simulator(Context(params, backend="cpu"))
    ct = sim.encrypt(np.random.default_rng(0).uniform(-1, 1, params.slots))
    return sim.rotate(ct, 1).predicted_bits


def run(log_ns, depth: int, scale_bits: int = 40, security: int = 128, repeat: int = 1,
        backend="auto", time_insecure: bool = False, progress=None) -> list[dict]:
    """The sweep's rows (dicts), one per (N, dnum, special primes)."""
    rows = []
    for log_n in log_ns:
        q_bits, cases = configs(log_n, depth, scale_bits)
        bound = MAX_LOG_QP[security][log_n]
        for dnum, special, policy in cases:
            params = _params(log_n, q_bits, special, scale_bits, dnum)
            row = {"log_n": log_n, "dnum": params.dnum, "special_primes": special,
                   "policy": policy, "alpha": math.ceil(len(q_bits) / params.dnum),
                   "log_qp": params.log_qp, "bound": bound,
                   "security_margin": bound - params.log_qp,
                   "key_mib": switching_key_bytes(params) / 2 ** 20,
                   "rotation_bits": rotation_bits(params), "key_switch_ms": None}
            if progress is not None:
                progress.step(f"N=2^{log_n} dnum {params.dnum} K={special}")
            if row["security_margin"] >= 0 or time_insecure:
                row["key_switch_ms"], row["key_switch_runs"] = key_switch_ms(
                    params, repeat, backend)
            rows.append(row)
    return rows


def table(rows) -> str:
    """The rows as a fixed-width text table."""
    head = (f"{'N':>5} {'dnum':>4} {'K':>3} {'policy':>7} {'log QP':>7} {'margin':>7} "
            f"{'key MiB':>8} {'ks ms':>8} {'rot bits':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ks = "-" if r["key_switch_ms"] is None else f"{r['key_switch_ms']:.1f}"
        lines.append(f"2^{r['log_n']:<3} {r['dnum']:>4} {r['special_primes']:>3} "
                     f"{r['policy']:>7} {r['log_qp']:>7.0f} {r['security_margin']:>7.0f} "
                     f"{r['key_mib']:>8.1f} {ks:>8} {r['rotation_bits']:>8.1f}")
    return "\n".join(lines)

"""fg.Parameters.suggest (issue 14 §2): secure parameters from a depth, a precision and a
security level; typed errors for impossible requests; the OpenFHE bootstrapping model.

The default run measures the precision of a few suggestions (N <= 2^15) encrypted and
checks the structure of all 36 of the acceptance (depth 1, 6, 13, 27 at 20, 25, 30 bits,
128/192/256-bit security); ``-m slow`` measures them all (N up to 2^17).
bench/suggest_precision.py writes those figures to bench/results/suggest_precision.json.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fhe_gpu as fg
from fhe_gpu.ckks.suggest import MARGIN_BITS, bootstrap_configs, suggest
from fhe_gpu.rlwe.security import MAX_LOG_QP
from fhe_gpu.tooling import accuracy

DEPTHS, PRECISIONS, SECURITIES = (1, 6, 13, 27), (20, 25, 30), (128, 192, 256)


def measured_bits(params, depth: int, seeds: int = 2) -> float:
    """Mean measured max-error precision of ``depth`` products of unit-modulus values."""
    setting = accuracy.Setting("mul_chain", depth, params.log_n, tuple(params.q_bits),
                               tuple(params.p_bits), params.scale_bits, params.dnum)
    ctx = fg.Context(params, backend="cpu")
    return float(np.mean([accuracy._encrypted_run(setting, ctx, s)["measured"]
                          for s in range(seeds)]))


@pytest.mark.parametrize("depth,precision,security",
                         [(1, 20, 128), (6, 20, 128), (1, 30, 256), (6, 25, 192)])
def test_suggested_parameters_meet_the_precision(depth, precision, security):
    s = suggest(depth, precision, security)
    got = measured_bits(s.params, depth)
    print(f"\ndepth {depth} at {precision} bits, {security}-bit: {s.params!r}: measured "
          f"{got:.2f}, predicted {s.final_bits:.2f}")
    assert got >= precision
    assert s.params.log_qp <= MAX_LOG_QP[security][s.params.log_n]


def test_every_acceptance_request_is_secure_and_the_ring_is_the_smallest():
    for depth, precision, security in itertools.product(DEPTHS, PRECISIONS, SECURITIES):
        s = suggest(depth, precision, security)
        p = s.params
        assert p.security == security and p.max_level == depth
        assert p.log_qp <= MAX_LOG_QP[security][p.log_n] == s.bound
        assert s.final_bits >= precision + MARGIN_BITS
        if p.log_n > 10 and depth in (1, 13):
            with pytest.raises(fg.SecurityError):
                suggest(depth, precision, security, log_n=p.log_n - 1)
        text = str(s)
        assert f"N = 2^{p.log_n}" in text and "log QP" in text and "MiB" in text


def test_parameters_suggest_is_the_classmethod():
    p = fg.Parameters.suggest(depth=4, precision_bits=22)
    assert isinstance(p, fg.Parameters) and p.max_level == 4 and p.security == 128
    assert fg.Parameters.suggest(3, 20, slots=1 << 14).slots >= 1 << 14
    assert fg.Parameters.suggest(3, 20, log_n=15).log_n == 15


def test_impossible_requests_name_the_requirement_and_the_shortfall():
    with pytest.raises(fg.SecurityError) as err:
        suggest(30, 25, 128, log_n=15)
    msg = str(err.value)
    assert "depth 30" in msg and "N=2^15" in msg and "881" in msg and "over by" in msg
    assert "use N=2^16" in msg
    with pytest.raises(fg.SecurityError, match="largest ring"):
        suggest(120, 30, 256)
    with pytest.raises(fg.ParameterError, match="scale of 2\\^"):
        suggest(2, 45, 128)
    for bad in (dict(depth=-1, precision_bits=20), dict(depth=2, precision_bits="20"),
                dict(depth=2, precision_bits=20, security=100),
                dict(depth=2, precision_bits=20, log_n=9),
                dict(depth=2, precision_bits=20, log_n=12, slots=1 << 12)):
        with pytest.raises(fg.ParameterError):
            suggest(**bad)


def test_openfhe_bootstrapping_configurations_at_n16():
    """Dense secret, level budget {3,3}, 59/60-bit, dnum 3: refused (no level left under
    the 128-bit bound); sparse-encapsulated at the same settings fits with 4 levels."""
    configs = {(c.secret, c.budget): c for c in bootstrap_configs(16, 128)}
    dense, encapsulated = configs["uniform", (3, 3)], configs["sparse-encapsulated", (3, 3)]
    assert dense.depth == 20 and not dense.fits and "1747" in dense.reason
    assert encapsulated.depth == 16 and encapsulated.fits and encapsulated.levels_left == 4
    assert not configs["uniform", (4, 4)].fits and not configs["sparse", (3, 3)].fits
    s = suggest(3, 20, bootstrap=True)
    assert s.params.log_n == 16 and s.bootstrap.secret == "sparse-encapsulated"
    assert s.params.max_level == s.bootstrap.depth + 3
    assert s.params.log_qp <= 1747 and "Galois keys" in str(s)


@pytest.mark.slow
def test_every_acceptance_request_meets_its_precision_encrypted():
    for depth, precision, security in itertools.product(DEPTHS, PRECISIONS, SECURITIES):
        s = suggest(depth, precision, security)
        got = measured_bits(s.params, depth, seeds=1)
        print(f"depth {depth} at {precision} bits, {security}-bit: N=2^{s.params.log_n}, "
              f"measured {got:.2f}, predicted {s.final_bits:.2f}")
        assert got >= precision

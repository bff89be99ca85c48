"""The HomomorphicEncryption.org bounds on log2(QP) for a ternary secret (classical).

Up to N = 2^15 from the standard (the same in SEAL and OpenFHE); 2^16 and 2^17 from
OpenFHE's current extension, the most conservative of the published ones.
"""
from __future__ import annotations

import logging
import math

from ..errors import ParameterError, SecurityError

log = logging.getLogger("fhe_gpu")

#: security level -> {log2 N: max log2 QP}
MAX_LOG_QP = {
    128: {10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881, 16: 1747, 17: 3523},
    192: {10: 19, 11: 37, 12: 75, 13: 152, 14: 305, 15: 611, 16: 1199, 17: 2411},
    256: {10: 14, 11: 29, 12: 58, 13: 118, 14: 237, 15: 476, 16: 929, 17: 1866},
}


def log2_product(primes) -> float:
    """log2 of the product of ``primes``."""
    return sum(math.log2(p) for p in primes)


def check_security(log_n: int, log_qp: float, security, quiet: bool = False) -> None:
    """Raise SecurityError when log_qp exceeds the bound for (N, security); None opts out.

    Parameters call it twice: on the nominal bit sizes (before generating primes, so that
    absurd requests fail fast) and on the actual log2(QP) of the generated primes, which
    can lie well above the nominal sum when many small primes are asked for (each is the
    nearest NTT-friendly prime, up to several multiples of 2N above 2^bits). ``quiet``
    skips the opt-out warning on the second call.
    """
    if security is None:
        if quiet:
            return
        log.warning("security=None: parameters N=2^%d, log QP=%.1f are NOT checked "
                    "against the HomomorphicEncryption.org table", log_n, log_qp)
        return
    if security not in MAX_LOG_QP:
        raise ParameterError(f"security={security!r} is not supported: use 128, 192, 256 or None")
    table = MAX_LOG_QP[security]
    if log_n not in table:
        raise SecurityError(
            f"no {security}-bit security bound for N=2^{log_n}: the table covers "
            f"N=2^{min(table)}..2^{max(table)} (use security=None to opt out)")
    bound = table[log_n]
    if log_qp > bound:
        raise SecurityError(
            f"N=2^{log_n} with log2(QP)={log_qp:.2f} exceeds the {security}-bit bound "
            f"{bound}: use fewer or smaller primes, or a larger N")

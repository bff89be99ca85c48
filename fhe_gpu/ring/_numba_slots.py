"""Numba kernels over float slot arrays, for the ckks Simulator
(:mod:`fhe_gpu.ckks.simfast` prepares their arguments and documents the model): a sum of
plaintext products over rotations of one ciphertext, a rotation, a product of two
ciphertexts and an added noise, each with the values, the per-slot error variance and
one draw of the error. Float64 throughout; complex arrays travel as float pairs where a
kernel says so. Single-threaded (a Simulator's arrays are small).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _accumulate(out, src, w, shift, start, square):  # pragma: no cover - compiled
    """out[j, :] += w[i] (squared if ``square``) * src[(j + shift) % J, :] for the runs
    j = (start + i) % J, i < len(w) (out, src: (J, width))."""
    rows, width = out.shape
    j, i, n = start, 0, w.size
    while i < n:
        jj = j + shift - rows if j + shift >= rows else j + shift
        m = min(n - i, rows - j, rows - jj)
        o = out[j:j + m].reshape(m * width)
        x = src[jj:jj + m].reshape(m * width)
        for q in range(m):
            p = w[i + q] * w[i + q] if square else w[i + q]
            for c in range(width):
                o[q * width + c] += p * x[q * width + c]
        i += m
        j = j + m - rows if j + m >= rows else j + m


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def plain_sum_kernel(weights, offsets, shifts, starts, out_shifts, values, var_in, var_rot,
                     switch_var, extra_var, has_extra, floor, normal, out_values, out_var,
                     out_state):  # pragma: no cover - compiled
    """A sum over terms t of weights times x rotated by shifts[t] runs, the product
    rotated by out_shifts[t] runs K_t, per batch row b and run j (J runs of r slots;
    indices mod J). Term t's weights w_t are weights[offsets[t]:offsets[t + 1]], for the
    runs (starts[t] + i) % J (zero elsewhere); a term of shift 0 is x itself:

    out_values[b, j, :] = sum_t w_t[j + K_t] * values[b, j + K_t + shifts[t], :]
    out_var[b, j, u] = sum_t w_t[j + K_t]^2 * ((var_rot if shifts[t] else var_in)[b,
                       j + K_t + shifts[t], u] + (switch_var[j + K_t, u] if shifts[t]))
                       + extra_var[j, u] (if has_extra) + floor
    out_state[b, j, 2u:2u+2] = sqrt(out_var[b, j, u]) * normal[b, j, 2u:2u+2]
    """
    rows, r = switch_var.shape
    for b in range(values.shape[0]):
        ov, ovar, ost, z = out_values[b], out_var[b], out_state[b], normal[b]
        ov[:, :] = 0.0
        ovar[:, :] = 0.0
        for t in range(shifts.size):
            w, k = weights[offsets[t]:offsets[t + 1]], out_shifts[t]
            start = starts[t] - k + rows if starts[t] < k else starts[t] - k
            shift = shifts[t] + k - rows if shifts[t] + k >= rows else shifts[t] + k
            _accumulate(ov, values[b], w, shift, start, False)
            if shifts[t]:
                _accumulate(ovar, var_rot[b], w, shift, start, True)
                _accumulate(ovar, switch_var, w, k, start, True)
            else:
                _accumulate(ovar, var_in[b], w, shift, start, True)
        for j in range(rows):
            for u in range(r):
                v = ovar[j, u] + floor
                if has_extra:
                    v += extra_var[j, u]
                ovar[j, u] = v
                sd = np.sqrt(v)
                ost[j, 2 * u] = sd * z[j, 2 * u]
                ost[j, 2 * u + 1] = sd * z[j, 2 * u + 1]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def rotate_kernel(values, var, state, k, switch_var, switch_sd, normal, out_values,
                  out_var, out_state):  # pragma: no cover - compiled
    """A rotation by k slots (0 <= k < S) with a key switch's noise, per batch row b and
    slot i (values and state as float pairs when complex, ``width`` floats per slot):

    out_values[b, i] = values[b, (i + k) % S]
    out_var[b, i] = var[b, (i + k) % S] + switch_var[i]
    out_state[b, i] = state[b, (i + k) % S] + switch_sd[i] * normal[b, i]
    """
    slots = var.shape[1]
    width = values.shape[1] // slots
    for b in range(var.shape[0]):
        for lo, hi, off in ((0, slots - k, k), (slots - k, slots, k - slots)):
            ov, xv = out_values[b], values[b]
            for i in range(lo * width, hi * width):
                ov[i] = xv[i + off * width]
            ovar, xvar = out_var[b], var[b]
            for i in range(lo, hi):
                ovar[i] = xvar[i + off] + switch_var[i]
            ost, xst, z = out_state[b], state[b], normal[b]
            for i in range(lo, hi):
                sd = switch_sd[i]
                ost[2 * i] = xst[2 * (i + off)] + sd * z[2 * i]
                ost[2 * i + 1] = xst[2 * (i + off) + 1] + sd * z[2 * i + 1]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def product_kernel(x, y, var_x, var_y, err_x, err_y, same, noise_var, noise_sd, normal,
                   out, out_var, out_state):  # pragma: no cover - compiled
    """The product of x + err_x and y + err_y (variances var_x, var_y; the same
    ciphertext when ``same``) relinearized, per batch row b and slot i:

    out = x * y; out_state = y err_x + x err_y + err_x err_y + noise_sd[i] normal
    out_var = |y|^2 var_x + |x|^2 var_y + var_x var_y + noise_var[i]
              (4 |x|^2 var_x + 2 var_x^2 + noise_var[i] when ``same``)
    """
    for b in range(out.shape[0]):
        for i in range(out.shape[1]):
            xi, yi, ex, ey = x[b, i], y[b, i], err_x[b, i], err_y[b, i]
            vx, vy = var_x[b, i], var_y[b, i]
            ax = xi.real * xi.real + xi.imag * xi.imag
            if same:
                var = 4.0 * ax * vx + 2.0 * vx * vx
            else:
                var = (yi.real * yi.real + yi.imag * yi.imag) * vx + ax * vy + vx * vy
            out[b, i] = xi * yi
            out_var[b, i] = var + noise_var[i]
            out_state[b, i] = yi * ex + xi * ey + ex * ey + noise_sd[i] * normal[b, i]


@njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def noise_kernel(var, state, noise_var, noise_sd, normal, out_var,
                 out_state):  # pragma: no cover - compiled
    """An error plus an independent noise, per batch row b and slot i (state, normal and
    out_state as float pairs): out_var = var + noise_var[i], out_state = state +
    noise_sd[i] * normal."""
    for b in range(var.shape[0]):
        for i in range(var.shape[1]):
            out_var[b, i] = var[b, i] + noise_var[i]
            sd = noise_sd[i]
            out_state[b, 2 * i] = state[b, 2 * i] + sd * normal[b, 2 * i]
            out_state[b, 2 * i + 1] = state[b, 2 * i + 1] + sd * normal[b, 2 * i + 1]

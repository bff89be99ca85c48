"""Every user-facing failure is a typed FHEError naming the value it got and what it needed."""
import numpy as np
import pytest

import fhe_gpu as fg
from conftest import make_world, small_params


@pytest.fixture(scope="module")
def w():
    return make_world(small_params("cpu"), "cpu")


def test_every_error_is_an_fhe_error():
    for cls in (fg.ParameterError, fg.SecurityError, fg.ContextMismatchError, fg.LevelError,
                fg.ScaleMismatchError, fg.KeyMissingError, fg.SerializationError,
                fg.BackendUnavailableError):
        assert issubclass(cls, fg.FHEError)
    assert issubclass(fg.ParameterError, ValueError) and issubclass(fg.SecurityError, ValueError)


def test_insecure_parameters():
    with pytest.raises(fg.SecurityError, match=r"N=2\^14.*540.*438"):
        fg.Parameters(log_n=14, q_bits=[60] * 8, p_bits=[60])
    with pytest.raises(fg.SecurityError, match=r"N=2\^14.*275.*237"):
        fg.Parameters(log_n=14, q_bits=[55] * 4, p_bits=[55], security=256)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(log_n=0, q_bits=[30], p_bits=[30]), "log_n=0"),
    (dict(log_n=10, q_bits=[], p_bits=[30]), "q_bits"),
    (dict(log_n=10, q_bits=[70], p_bits=[30]), "q_bits entry=70"),
    (dict(log_n=10, q_bits=[30], p_bits=[30], dnum=5), "dnum=5"),
    (dict(log_n=10, q_bits=[30], p_bits=[30], security=100), "security=100"),
])
def test_malformed_parameters(kwargs, needle):
    with pytest.raises(fg.ParameterError, match=needle.replace("^", r"\^")):
        fg.Parameters(**kwargs)


def test_unknown_preset_and_backend():
    with pytest.raises(fg.ParameterError, match="N99"):
        fg.Parameters.preset("N99")
    with pytest.raises(fg.BackendUnavailableError, match="'tpu'"):
        fg.Context(small_params("cpu"), backend="tpu")


def test_ciphertext_from_other_parameters(w):
    other = make_world(fg.Parameters(log_n=10, q_bits=[50, 30, 30], p_bits=[60],
                                     scale_bits=30, security=None), "cpu")
    ct = other.encrypt(other.uniform())
    for op in (lambda: w.ev.add(ct, ct), lambda: w.decryptor.decrypt(ct),
               lambda: w.ev.rotate(ct, 1), lambda: w.encoder.decode(other.encoder.encode([1.0]))):
        with pytest.raises(fg.ContextMismatchError, match="fingerprint"):
            op()


def test_rescale_at_level_zero(w):
    ct = w.ev.drop_level(w.encrypt(w.uniform()), 0)
    with pytest.raises(fg.LevelError, match="cannot rescale: level 0"):
        w.ev.rescale(ct)
    with pytest.raises(fg.LevelError, match="level 0"):
        w.ev.mul(ct, ct)
    with pytest.raises(fg.LevelError, match="level 9"):
        w.encoder.encode([1.0], level=9)


def test_mismatched_scales(w):
    a = w.encrypt(w.uniform(), scale=2.0 ** 30)
    b = w.encrypt(w.uniform(), scale=2.0 ** 29)
    with pytest.raises(fg.ScaleMismatchError, match=r"1073741824\.0 vs 536870912\.0"):
        w.ev.add(a, b)


def test_missing_keys(w):
    ct = w.encrypt(w.uniform())
    with pytest.raises(fg.KeyMissingError, match="no Galois key for rotation 5"):
        w.ev.rotate(ct, 5)
    bare = fg.Evaluator(w.ctx)
    with pytest.raises(fg.KeyMissingError, match="relinearization"):
        bare.mul(ct, ct)
    with pytest.raises(fg.KeyMissingError, match="conjugation"):
        bare.conjugate(ct)


def test_bad_values(w):
    slots = w.params.slots
    with pytest.raises(fg.ParameterError, match=f"{slots + 1} values.*{slots}"):
        w.encoder.encode(np.zeros(slots + 1))
    with pytest.raises(fg.ParameterError, match="finite.*nan"):
        w.encoder.encode([1.0, float("nan")])
    with pytest.raises(fg.ParameterError, match="finite.*inf"):
        w.encoder.encode([float("inf")])
    with pytest.raises(fg.ParameterError, match="dtype"):
        w.encoder.encode(["a", "b"])
    with pytest.raises(fg.ParameterError, match="finite"):
        w.ev.add(w.encrypt([1.0]), float("nan"))


def test_batch_sizes_that_do_not_broadcast(w):
    a = w.encrypt(w.uniform(2, w.params.slots))
    b = w.encrypt(w.uniform(3, w.params.slots))
    with pytest.raises(fg.ParameterError, match="batch sizes 2 and 3"):
        w.ev.add(a, b)


def test_wrong_operand_types(w):
    ct = w.encrypt([1.0])
    with pytest.raises(fg.ParameterError, match="str"):
        w.ev.add(ct, "x")
    with pytest.raises(fg.ParameterError, match="Ciphertext operand"):
        w.ev.add(1.0, 2.0)
    with pytest.raises(fg.ParameterError, match="rotation step"):
        w.ev.rotate(ct, 1.5)
    with pytest.raises(fg.ParameterError, match="PublicKey or SecretKey"):
        fg.Encryptor(w.ctx, w.evk)

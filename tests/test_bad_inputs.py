"""Every bad argument gets an FHEError subclass naming what it got: never AttributeError,
TypeError, IndexError, OverflowError or a bare ValueError from inside the library."""
import numpy as np
import pytest

import fhe_gpu as fg
from conftest import make_world, small_params

W = make_world(small_params("cpu"), "cpu")
CT = W.encrypt(W.uniform(2, W.params.slots))
PT = W.encoder.encode(W.uniform())
NOT_A_CONTEXT = W.params

CASES = {
    # a non-Context first argument
    "KeyGenerator(params)": lambda: fg.KeyGenerator(NOT_A_CONTEXT),
    "Encoder(params)": lambda: fg.Encoder(NOT_A_CONTEXT),
    "Encryptor(params, pk)": lambda: fg.Encryptor(NOT_A_CONTEXT, W.pk),
    "Decryptor(params, sk)": lambda: fg.Decryptor(NOT_A_CONTEXT, W.sk),
    "Evaluator(params)": lambda: fg.Evaluator(NOT_A_CONTEXT),
    "Context(ctx)": lambda: fg.Context(W.ctx),
    "from_bytes(data, params)": lambda: fg.Ciphertext.from_bytes(CT.to_bytes(), NOT_A_CONTEXT),
    # non-iterables where lists are expected
    "evaluation_keys(rotations=5)": lambda: W.kg.evaluation_keys(rotations=5),
    "rotate_many(ct, 5)": lambda: W.ev.rotate_many(CT, 5),
    "stack(5)": lambda: fg.Ciphertext.stack(5),
    "Parameters(q_bits=5)": lambda: fg.Parameters(10, 5, [60], security=None),
    "Parameters(p_bits=5)": lambda: fg.Parameters(10, [50], 5, security=None),
    # batch indices
    "ct[5]": lambda: CT[5],
    "ct['a']": lambda: CT["a"],
    "ct[1.5]": lambda: CT[1.5],
    "ct[None]": lambda: CT[None],
    "ct[5:9]": lambda: CT[5:9],
    # extreme or NaN scalars and bad steps / levels
    "add(ct, nan)": lambda: W.ev.add(CT, float("nan")),
    "add(ct, 10**400)": lambda: W.ev.add(CT, 10 ** 400),
    "mul(ct, inf)": lambda: W.ev.mul(CT, float("inf")),
    "mul(ct, complex nan)": lambda: W.ev.mul(CT, complex(0, float("nan"))),
    "mul_to_scale(ct, nan, 2^30)": lambda: W.ev.mul_to_scale(CT, float("nan"), 2.0 ** 30),
    "mul_to_scale(ct, 1, 'x')": lambda: W.ev.mul_to_scale(CT, 1.0, "x"),
    "rotate(ct, 1.5)": lambda: W.ev.rotate(CT, 1.5),
    "rotate(ct, '1')": lambda: W.ev.rotate(CT, "1"),
    "drop_level(ct, 'a')": lambda: W.ev.drop_level(CT, "a"),
    "drop_level(ct, -1)": lambda: W.ev.drop_level(CT, -1),
    "drop_level(3, 0)": lambda: W.ev.drop_level(3, 0),
    # wrong types
    "Context(backend=['cpu'])": lambda: fg.Context(W.params, backend=["cpu"]),
    "Context(backend=3)": lambda: fg.Context(W.params, backend=3),
    "KeyGenerator(seed='abc')": lambda: fg.KeyGenerator(W.ctx, seed="abc"),
    "KeyGenerator(seed=123)": lambda: fg.KeyGenerator(W.ctx, seed=123),
    "Encryptor(seed=b'short')": lambda: fg.Encryptor(W.ctx, W.pk, seed=b"short"),
    "stack([ct, pt])": lambda: fg.Ciphertext.stack([CT, PT]),
    "stack([ct, 3])": lambda: fg.Ciphertext.stack([CT, 3]),
    "stack([])": lambda: fg.Ciphertext.stack([]),
    "preset(['N14'])": lambda: fg.Parameters.preset(["N14"]),
    "preset(None)": lambda: fg.Parameters.preset(None),
    "Parameters(log_n='14')": lambda: fg.Parameters("14", [50], [60], security=None),
    "Parameters(log_n=10.5)": lambda: fg.Parameters(10.5, [50], [60], security=None),
    "Parameters(scale_bits=None)": lambda: fg.Parameters(10, [50], [60], None, security=None),
    "Parameters(dnum='2')": lambda: fg.Parameters(10, [50, 30], [60], dnum="2", security=None),
    "Parameters(security='128')": lambda: fg.Parameters(10, [50], [60], security="128"),
    "Parameters(security=True)": lambda: fg.Parameters(10, [50], [60], security=True),
    "encode('abc')": lambda: W.encoder.encode("abc"),
    "encode(ragged)": lambda: W.encoder.encode([[1.0, 2.0], [3.0]]),
    "encode(3-D)": lambda: W.encoder.encode(np.zeros((2, 2, 2))),
    "encode([1, None])": lambda: W.encoder.encode([1.0, None]),
    "encode(level=1.5)": lambda: W.encoder.encode([1.0], level=1.5),
    "encode(level=-1)": lambda: W.encoder.encode([1.0], level=-1),
    "decode(ct)": lambda: W.encoder.decode(CT),
    "decode(3)": lambda: W.encoder.decode(3),
    "Encryptor(ctx, 3)": lambda: fg.Encryptor(W.ctx, 3),
    "encrypt(ct)": lambda: W.encryptor.encrypt(CT),
    "encrypt(array)": lambda: W.encryptor.encrypt(np.zeros(4)),
    "Decryptor(ctx, pk)": lambda: fg.Decryptor(W.ctx, W.pk),
    "decrypt(pt)": lambda: W.decryptor.decrypt(PT),
    "Evaluator(ctx, evk='x')": lambda: fg.Evaluator(W.ctx, "x"),
    "add(pt, pt)": lambda: W.ev.add(PT, PT),
    "add(3, 4)": lambda: W.ev.add(3, 4),
    "add(ct, 'a')": lambda: W.ev.add(CT, "a"),
    "add(ct, None)": lambda: W.ev.add(CT, None),
    "mul(ct, [1, 2])": lambda: W.ev.mul(CT, [1, 2]),
    "rescale(pt)": lambda: W.ev.rescale(PT),
    "from_bytes(garbage)": lambda: fg.Ciphertext.from_bytes(b"garbage", W.ctx),
    "from_bytes(str)": lambda: fg.Ciphertext.from_bytes("str", W.ctx),
    "from_bytes(None)": lambda: fg.Ciphertext.from_bytes(None, W.ctx),
    "set_num_threads(0)": lambda: fg.set_num_threads(0),
    "set_num_threads('2')": lambda: fg.set_num_threads("2"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_a_typed_error(case):
    with pytest.raises(fg.FHEError) as info:
        CASES[case]()
    assert str(info.value), f"{case}: empty message"


def test_iteration_over_a_batch_stops_cleanly():
    assert [c.batch_size for c in CT] == [1, 1]

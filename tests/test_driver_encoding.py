"""Fixed-point encoding: python-paillier's EncodedNumber (subclasses with other bases too), the
exponent range loaders enforce, and property tests of the encoder."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phe import paillier as phe

from montpipe.driver.encoding import EncodedNumber, encode_array, exponent_range


def _subclasses(base):
    ours = type(f"Base{base}", (EncodedNumber,), {"BASE": base, "LOG2_BASE": math.log2(base)})
    theirs = type(f"PheBase{base}", (phe.EncodedNumber,),
                  {"BASE": base, "LOG2_BASE": math.log2(base)})
    return ours, theirs


@pytest.mark.parametrize("base", [2, 7, 10, 64])
def test_subclasses_with_another_base_behave_as_in_python_paillier(keypair_factory, base):
    pk, sk = keypair_factory(512)
    ppk = phe.PaillierPublicKey(pk.n)
    ours, theirs = _subclasses(base)
    for value in (0, 1, -1, 12345, 3.14159, -2.5e-7, 1e20, 6.02e23 / 7):
        mine, ref = ours.encode(pk, value), theirs.encode(ppk, value)
        assert (mine.encoding, mine.exponent) == (ref.encoding, ref.exponent), value
        assert mine.decode() == ref.decode()
        assert mine.decrease_exponent_to(mine.exponent - 3).decode() == pytest.approx(value)
        encrypted = pk.encrypt(mine)
        assert sk.decrypt_encoded(encrypted, ours).decode() == ref.decode()
    precise = ours.encode(pk, 1.0, precision=1e-6)
    assert precise.exponent == theirs.encode(ppk, 1.0, precision=1e-6).exponent


# -- properties -------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@given(finite)
def test_property_scalar_encoding_round_trips_like_python_paillier(keypair_factory, x):
    pk, _ = keypair_factory(256)
    ppk = phe.PaillierPublicKey(pk.n)
    try:
        ref = phe.EncodedNumber.encode(ppk, x)
    except ValueError:
        with pytest.raises(ValueError, match="max_int"):
            EncodedNumber.encode(pk, x)
        return
    mine = EncodedNumber.encode(pk, x)
    assert (mine.encoding, mine.exponent) == (ref.encoding, ref.exponent)
    assert mine.decode() == x
    lo, hi = exponent_range(pk.n)
    assert lo <= mine.exponent <= hi


@given(st.lists(st.one_of(finite.filter(lambda v: abs(v) < 1e30), st.integers(-2**60, 2**60)),
                min_size=1, max_size=8))
def test_property_array_encoding_decodes_within_its_precision(keypair_factory, values):
    pk, _ = keypair_factory(512)
    arr = np.array(values, dtype=np.float64 if any(isinstance(v, float) for v in values)
                   else object)
    mantissas, exponent, shape = encode_array(pk, arr)
    assert shape == (len(values),)
    biggest = max(abs(Fraction(v)) for v in arr.tolist())
    step = Fraction(16) ** exponent
    for m, v in zip(mantissas, arr.tolist(), strict=True):
        assert abs(m) <= pk.max_int
        error = abs(m * step - Fraction(v))
        assert error <= step / 2                 # rounded to the shared exponent
        if abs(Fraction(v)) >= biggest * Fraction(2) ** -64:
            assert error == 0                    # exact within 64 bits of the largest
